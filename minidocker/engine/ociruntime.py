"""``--runtime NAME``: run the bundle under any runc-compatible runtime's command line.

This is how Docker itself is split: the engine writes a bundle, and an OCI runtime runs
it, driven through runc's command line (``runc``, ``crun``, or ``minidocker-runtime``,
minidocker's own runtime behind that same command line). ``create`` makes the
container (namespaces, mounts, cgroup; the command not started), ``start`` lets it
run, ``delete`` takes it down. The default runtime, ``minidocker``, is the same code
called in-process (:mod:`minidocker.runtime`), which saves three process starts.

We mark ourselves a *child subreaper* (``PR_SET_CHILD_SUBREAPER``), as conmon and
containerd-shim do: when ``create`` exits, the container's init is re-parented to us
(the nearest subreaper above it), and we ``waitpid`` for its exit status like for any
child. With ``-t``, the runtime opens the terminal inside the container and hands us
its master over ``--console-socket`` (:mod:`minidocker.runtime.console`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from .. import paths
from ..errors import InvalidInput, MinidockerError
from ..kernel import capabilities

#: The in-process runtime's name (``--runtime minidocker``, the default).
BUILTIN = "minidocker"


def resolve(name: str) -> str | None:
    """The runtime binary for ``--runtime NAME`` (None for the built-in one): an
    absolute path, or a name on ``$PATH`` or beside the running Python (a virtualenv's
    ``bin/``, where ``minidocker-runtime`` is installed)."""
    if name == BUILTIN:
        return None
    if "/" in name:
        found = name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    else:
        found = shutil.which(name)
        beside = os.path.join(os.path.dirname(sys.executable), name)
        if found is None and os.access(beside, os.X_OK):
            found = beside
    if found is None:
        raise InvalidInput(f"unknown or invalid runtime name: {name}")
    return os.path.abspath(found)


def state_root(binary: str) -> str:
    """The runtime's ``--root``: one directory per runtime in the data root."""
    return os.path.join(paths.data_root(), "runtimes", os.path.basename(binary))


class CommandNotRunnable(MinidockerError):
    """The runtime found at ``create`` that the command cannot be executed (runc 1.1
    looks it up before the init blocks): exit 127 (not found) or 126, as Docker."""

    def __init__(self, message: str):
        super().__init__(message)
        self.exit_code = 126 if "permission denied" in message else 127


class OciRuntimeProcess:
    """A container created by a runtime binary; the same interface as the built-in
    runtime's :class:`~minidocker.runtime.create.ContainerProcess` (``pid``,
    ``master_fd``, ``start()``, ``wait()``, ``cleanup()``)."""

    oom_killed = False
    exec_error = None

    def __init__(self, binary: str, container_id: str, pid: int, master_fd: int | None,
                 cgroup: str | None = None):
        self.binary = binary
        self.container_id = container_id
        self.pid = pid
        self.master_fd = master_fd
        self.cgroup = cgroup
        self.code = None

    def _run(self, *args, **kwargs) -> subprocess.CompletedProcess:
        return run_runtime(self.binary, *args, **kwargs)

    @classmethod
    def create(cls, binary: str, c, stdin: int, stdout: int, stderr: int) -> "OciRuntimeProcess":
        capabilities.set_child_subreaper()
        root = state_root(binary)
        if os.path.isdir(os.path.join(root, c.id)):
            # left by a monitor that died: the id must be free again
            run_runtime(binary, "delete", "--force", c.id, capture_output=True)
        pid_file = os.path.join(c.dir, "runtime.pid")
        log = os.path.join(c.dir, "runtime.log")
        args = ["--log", log, "--log-format", "json", "create", "--bundle", c.bundle,
                "--pid-file", pid_file]
        console = None
        if c.state["Config"].get("Tty"):
            from ..runtime.console import ConsoleListener
            console = ConsoleListener()
            args += ["--console-socket", console.path]
        try:
            # The container inherits the runtime's stdio ("pass-through" mode), so the
            # runtime's own errors go to a log file instead of a pipe we would wait on
            # forever (the init keeps its copy of the pipe).
            r = run_runtime(binary, *args, c.id, stdin=stdin, stdout=stdout, stderr=stderr)
            if r.returncode != 0:
                message = last_error(log)
                prefix = "unable to start container process: "
                if prefix + "exec: " in message:
                    raise CommandNotRunnable(message.split(prefix, 1)[1])
                raise MinidockerError(f"{os.path.basename(binary)} create failed: {message}")
            master = console.receive() if console is not None else None
        finally:
            if console is not None:
                console.close()
        with open(pid_file) as f:
            return cls(binary, c.id, int(f.read().strip()), master, c.cgroup)

    def start(self) -> None:
        r = self._run("start", self.container_id, capture_output=True, text=True)
        if r.returncode != 0:
            raise MinidockerError(f"{os.path.basename(self.binary)} start: {r.stderr.strip()}")

    def wait(self) -> int:
        if self.code is None:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            self.code = 128 - code if code < 0 else code
            self.oom_killed = self._oom_killed()
        return self.code

    def _oom_killed(self) -> bool:
        """Read before ``delete`` removes the cgroup: did the OOM killer act in it?"""
        if not self.cgroup:
            return False
        from ..kernel import cgroups
        try:
            return cgroups.open_cgroup(self.cgroup).oom_killed()
        except OSError:
            return False

    def cleanup(self) -> None:
        self._run("delete", "--force", self.container_id, capture_output=True)


def run_runtime(binary: str, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "--root", state_root(binary), *args], **kwargs)


def last_error(log: str) -> str:
    """The last error message of a runc-style json log (``{"level": "error", "msg":
    ...}`` per line), or its last line."""
    try:
        with open(log) as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return "(no log)"
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            return entry.get("msg", line)
    return lines[-1] if lines else "(empty log)"
