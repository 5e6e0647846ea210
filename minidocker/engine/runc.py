"""``--runtime runc``: run the same OCI bundle under the real runc, for comparison.

This is how Docker itself is split: the engine writes a bundle, and an OCI runtime runs
it. ``runc create`` makes the container (namespaces, mounts, cgroup; the command not
started), ``runc start`` lets it run. We mark ourselves a *child subreaper*
(``PR_SET_CHILD_SUBREAPER``) so that when ``runc create`` exits, the container's init
is re-parented to us, and we can ``waitpid`` for its exit status like for any child.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

from .. import paths
from ..errors import MinidockerError

PR_SET_CHILD_SUBREAPER = 36


def runc_root() -> str:
    return os.path.join(paths.data_root(), "runc")


def _runc(*args, **kwargs) -> subprocess.CompletedProcess:
    binary = shutil.which("runc")
    if binary is None:
        raise MinidockerError("runc is not installed (apt-get install runc)")
    return subprocess.run([binary, "--root", runc_root(), *args], **kwargs)


def _last_line(path: str) -> str:
    try:
        with open(path) as f:
            lines = [l.strip() for l in f if l.strip()]
    except FileNotFoundError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


class RuncProcess:
    master_fd = None
    oom_killed = False

    def __init__(self, container_id: str, pid: int):
        self.container_id = container_id
        self.pid = pid
        self.code = None

    @classmethod
    def create(cls, c, stdin: int, stdout: int, stderr: int) -> "RuncProcess":
        if c.state["Config"].get("Tty"):
            raise MinidockerError("--runtime runc: -t is not supported")
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        pid_file = os.path.join(c.dir, "runc.pid")
        log = os.path.join(c.dir, "runc.log")
        # The container inherits runc's stdio ("pass-through" mode), so runc's own
        # errors go to a log file instead of a pipe we would wait on forever.
        r = _runc("--log", log, "create", "--bundle", c.bundle, "--pid-file", pid_file, c.id,
                  stdin=stdin, stdout=stdout, stderr=stderr)
        if r.returncode != 0:
            raise MinidockerError(f"runc create failed: {_last_line(log)}")
        with open(pid_file) as f:
            return cls(c.id, int(f.read().strip()))

    def start(self) -> None:
        r = _runc("start", self.container_id, capture_output=True, text=True)
        if r.returncode != 0:
            raise MinidockerError(f"runc start: {r.stderr.strip()}")

    def wait(self) -> int:
        if self.code is None:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            self.code = 128 - code if code < 0 else code
        return self.code

    def cleanup(self) -> None:
        _runc("delete", "--force", self.container_id, capture_output=True)
