"""``exec`` for a long-lived caller: a process in a running container, under a shim.

``minidocker exec`` (:func:`.lifecycle.exec_in`) runs the new process as its own child
and waits for it. The API service cannot do quite that: to wait for a process that was
forked by an intermediate child, the waiter must be a *subreaper*
(``PR_SET_CHILD_SUBREAPER``), and a service that is one would also inherit every
orphan below it, e.g. each container's monitor once its short-lived parent exits, and
would have to reap them all.

So the service forks a **shim** per exec (containerd-shim does the same job for
Docker): the shim becomes the subreaper, starts the process in the container, sends
back its pid (and its pty master with ``-t``, as ``SCM_RIGHTS``), waits for it and
reports its exit code, then exits. The caller gets a :class:`ShimmedProcess` with
``pid``, ``master_fd`` and ``wait()``.
"""

from __future__ import annotations

import os
import platform  # noqa: F401  (the runtime's setup imports it lazily; after setns into
                 # the container's mount namespace the host's stdlib is out of reach)
import socket

from ..errors import Conflict
from .containers import Container


def exec_options(c: Container, user=None, workdir=None, env=()) -> dict:
    """How ``docker exec`` runs a command in ``c``: the container's user, working dir
    and environment unless overridden, and what its PID 1 got from the bundle
    (capabilities, ``no_new_privs``, the seccomp filter). ``c`` is reconciled by the
    caller (``lifecycle.reconcile``: a container whose monitor died is not running)."""
    from .. import paths
    from .create import merge_env, parse_env
    from .etc_files import lookup_user
    if not c.state["State"]["Running"]:
        raise Conflict(f"Container {c.id} is not running")
    if c.state["State"].get("Paused"):
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    cfg = c.state["Config"]
    uid, gid, extra_gids, _home = lookup_user(c.rootfs, user if user is not None else cfg.get("User") or "")
    environment = merge_env(cfg["Env"], parse_env(env or ()))
    if not any(e.startswith("PATH=") for e in environment):
        from .bundle import DEFAULT_PATH
        environment.insert(0, DEFAULT_PATH)
    spec = paths.read_json(os.path.join(c.bundle, "config.json"))
    return dict(env=environment, cwd=workdir or cfg.get("WorkingDir") or "/", uid=uid, gid=gid,
                additional_gids=extra_gids, capabilities=spec["process"]["capabilities"],
                no_new_privileges=spec["process"].get("noNewPrivileges", False),
                seccomp_profile=spec.get("linux", {}).get("seccomp"))


class ShimmedProcess:
    """A process started in a container by a shim (see the module doc)."""

    def __init__(self, shim_pid: int, sock: socket.socket, pid: int, master_fd: int | None,
                 exec_error: str | None):
        self.shim_pid = shim_pid
        self._sock = sock
        self.pid = pid
        self.master_fd = master_fd
        self.exec_error = exec_error
        self.exit_code: int | None = None

    def wait(self) -> int:
        """Block until the process ends; its exit code (126/127 when it could not be
        executed)."""
        if self.exit_code is None:
            from ..runtime.create import receive_message
            message, fds = receive_message(self._sock)
            for fd in fds:
                os.close(fd)
            self.exit_code = int((message or {}).get("exit", 137))
            self._sock.close()
            try:
                os.waitpid(self.shim_pid, 0)
            except ChildProcessError:
                pass
        return self.exit_code

    def close_master(self) -> None:
        if self.master_fd is not None:
            os.close(self.master_fd)
            self.master_fd = None


def spawn(c: Container, args: list[str], stdio: tuple[int, int, int], tty: bool = False,
          user=None, workdir=None, env=()) -> ShimmedProcess:
    """Start ``args`` in container ``c`` with ``stdio`` (fds of ours) under a shim."""
    from ..runtime.create import receive_message, send_message
    options = exec_options(c, user, workdir, env)
    pid1 = c.state["State"]["Pid"]
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    shim = os.fork()
    if shim == 0:                                    # the shim
        code = 0
        try:
            parent.close()
            from ..runtime.create import close_fds_except
            close_fds_except({*stdio, child.fileno()})
            import signal
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            from ..kernel import capabilities as caps_mod
            from ..runtime.exec import spawn_in
            caps_mod.set_child_subreaper()
            try:
                handle = spawn_in(pid1, args, terminal=tty, stdio=stdio, **options)
            except BaseException as e:
                send_message(child, {"error": str(e)})
                os._exit(1)
            for fd in set(stdio):
                os.close(fd)            # ours are copies: the process holds its own
            master = [handle.master_fd] if handle.master_fd is not None else []
            send_message(child, {"pid": handle.pid, "exec_error": handle.exec_error}, master)
            if handle.master_fd is not None:
                os.close(handle.master_fd)
                handle.master_fd = None
            code = handle.wait(forward_signals=False)
            send_message(child, {"exit": code})
        except BaseException as e:   # noqa: BLE001 - reported to the service
            code = 1
            try:
                send_message(child, {"error": f"exec shim: {type(e).__name__}: {e}"})
            except OSError:
                pass
        finally:
            os._exit(code)
    child.close()
    message, fds = receive_message(parent)
    if not message or "error" in message:
        for fd in fds:
            os.close(fd)
        parent.close()
        os.waitpid(shim, 0)
        from ..errors import MinidockerError
        raise MinidockerError((message or {}).get("error") or "exec failed: the shim died")
    return ShimmedProcess(shim, parent, message["pid"], fds[0] if fds else None,
                          message.get("exec_error"))
