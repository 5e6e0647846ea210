"""``docker exec``: run one more process inside a running container.

A container is nothing but a process tree in some namespaces and a cgroup, so getting
"into" it means joining exactly those: the new process is put into the container's
cgroup (read from ``/proc/PID/cgroup``), joins its namespaces with ``setns`` on the
files in ``/proc/PID/ns/`` (joining the mount namespace also moves our root to the
container's root), and forks once more, because a PID namespace, like with
``unshare``, is entered only by the children forked after ``setns``. Then it takes on
the user and capabilities, and execs.

The new process gets what the container's PID 1 got: the engine passes the
capabilities, ``no_new_privs`` and seccomp filter of the container's bundle (a filter
cannot be read back from a process). Without them, the capability bounding set and
``no_new_privs`` are read from ``/proc/PID/status``, and no filter is installed.
"""

from __future__ import annotations

import os
import socket
import sys

from ..errors import InvalidInput, MinidockerError, NotFound
from ..kernel import capabilities as caps_mod
from ..kernel import cgroups, namespaces
from . import process as proc_steps
from . import pty as ptys
from . import seccomp
from .create import (ContainerProcess, _report_and_exit, close_fds_except,
                     collect_setup_messages, receive_message, reset_signals, send_message,
                     setup_stdio)


def _status_fields(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except FileNotFoundError:
        raise NotFound(f"no container process with pid {pid}") from None


def container_environment(pid: int) -> list[str]:
    """The environment PID 1 was started with (``/proc/PID/environ``): what an exec gets
    when the caller gives none, as ``docker exec`` does."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return [item.decode(errors="replace") for item in f.read().split(b"\0") if item]
    except OSError:
        return []


def spawn_in(pid: int, args, env=None, cwd: str = "/", uid: int = 0, gid: int = 0,
             terminal: bool = False, stdio=(0, 1, 2), *, additional_gids=(),
             capabilities=None, no_new_privileges=None, seccomp_profile=None) -> ContainerProcess:
    """Start ``args`` inside the container whose PID 1 has host pid ``pid``.

    ``seccomp_profile`` is the container's ``linux.seccomp`` (a filter cannot be read
    back from a running process, so the caller passes it on, as Docker does).

    Returns a handle (``.pid``, ``.master_fd`` with ``terminal``, ``.wait()``,
    ``.exec_error``) once the command has been exec'd (or failed to be).
    """
    if not args:
        raise InvalidInput("no command specified")
    status = _status_fields(pid)
    if env is None:
        env = container_environment(pid)
    if capabilities is None:
        held = caps_mod.names_of(int(status.get("CapBnd", "0"), 16))
        capabilities = {"bounding": held, "effective": held, "permitted": held}
    if no_new_privileges is None:
        no_new_privileges = status.get("NoNewPrivs", "0").strip() == "1"
    cgroup = cgroups.cgroup_of_pid(pid)
    user = {"uid": int(uid), "gid": int(gid), "additionalGids": list(additional_gids or ())}
    handle = ContainerProcess(f"exec-in-{pid}", None, None, None)
    handle.started = True
    caps_mod.set_child_subreaper()
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    handle._sock = parent_end
    try:
        intermediate = os.fork()
        if intermediate == 0:
            parent_end.close()
            _intermediate(pid, cgroup, child_end, list(args), env, cwd, user, terminal,
                          stdio, capabilities, no_new_privileges, seccomp_profile)
        child_end.close()
        _handshake(handle, intermediate)
    except BaseException:
        handle.cleanup()
        raise
    return handle


def _handshake(handle: ContainerProcess, intermediate: int) -> None:
    """Learn the new process's pid and pty; then read end-of-file (``execve`` closed its
    close-on-exec end of the socket) or the exec error."""
    sock = handle._sock
    report = collect_setup_messages(sock, intermediate)
    handle.pid = report["pid"]
    if report["fds"]:
        handle.master_fd = report["fds"][0]
    if not (report["ready"] and handle.pid):
        if handle.pid:
            os.waitpid(handle.pid, 0)
        raise MinidockerError(f"exec failed: {report['error'] or 'the runtime child died'}")
    message, fds = receive_message(sock)
    for fd in fds:
        os.close(fd)
    if message and "error" in message:
        handle.exec_error = message["error"]
    sock.close()
    handle._sock = None


def _intermediate(pid, cgroup, sock, args, env, cwd, user, terminal, stdio, caps, nnp,
                  seccomp_profile) -> None:
    try:
        cgroup.join()
        namespaces.enter(pid)
        child = os.fork()
        if child == 0:
            _exec_child(sock, args, env, cwd, user, terminal, stdio, caps, nnp, seccomp_profile)
        send_message(sock, {"pid": child})
    except BaseException as e:
        _report_and_exit(sock, e)
    os._exit(0)


def _exec_child(sock, args, env, cwd, user, terminal, stdio, caps, nnp, seccomp_profile) -> None:
    try:
        setup_stdio(stdio)
        os.setsid()
        master = None
        if terminal:
            master, slave = ptys.open_pty_in("/dev/pts")
            ptys.attach_to_terminal(slave)
        if seccomp_profile:
            seccomp.install(seccomp_profile)
        proc_steps.become_user(user, caps, nnp)
        os.chdir(cwd or "/")
        environment = proc_steps.env_dict(env)
        close_fds_except({sock.fileno()} | ({master} if master is not None else set()))
        send_message(sock, {"ready": True}, [master] if master is not None else ())
        if master is not None:
            os.close(master)
        reset_signals()
        proc_steps.exec_command(args, environment)
    except BaseException as e:
        _report_and_exit(sock, e)


def exec_process(pid: int, args, env=None, cwd: str = "/", uid: int = 0, gid: int = 0,
                 terminal: bool = False, stdio=None, *, additional_gids=(),
                 interactive: bool = False, detach: bool = False, capabilities=None,
                 no_new_privileges=None, seccomp_profile=None) -> int:
    """``docker exec [-i] [-t] [-d]``: run ``args`` in the container and return its exit
    code (0 at once with ``detach``).

    With ``terminal`` the command gets a pty, relayed to our own stdin/stdout (stdin
    only with ``interactive``); otherwise it shares our stdout/stderr, and our stdin
    only with ``interactive``. An exec error is printed on stderr, as Docker does.
    """
    options = dict(additional_gids=additional_gids, capabilities=capabilities,
                   no_new_privileges=no_new_privileges, seccomp_profile=seccomp_profile)
    if detach:
        error = _spawn_detached(pid, args, env, cwd, uid, gid, options)
        if error:
            print(f"minidocker: OCI runtime exec failed: {error}", file=sys.stderr)
            return 126 if "permission denied" in error else 127
        return 0
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        if stdio is None:
            stdio = (0 if interactive else devnull, 1, 2)
        handle = spawn_in(pid, args, env, cwd, uid, gid, terminal, stdio, **options)
    finally:
        os.close(devnull)
    if handle.exec_error:
        print(f"minidocker: OCI runtime exec failed: {handle.exec_error}", file=sys.stderr)
    try:
        if handle.master_fd is not None:
            ptys.relay_terminal(handle.master_fd, forward_stdin=interactive)
        return handle.wait()
    finally:
        handle.cleanup()


def _spawn_detached(pid, args, env, cwd, uid, gid, options) -> str | None:
    """``docker exec -d``: start the command under a small *shim* process that waits for
    it, and return at once (with the exec error, if any).

    Why a shim: the exec'd process lives in the container's PID namespace, but its
    parent is outside. A PID 1 that exits has to wait until *every* process of its
    namespace has been reaped, including this one; if nobody waited for it, its zombie
    would keep the container from ever finishing. The shim (a subreaper, like
    containerd-shim) reaps it, whenever it ends.
    """
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    shim = os.fork()
    if shim == 0:
        os.close(read_end)
        try:
            caps_mod.set_child_subreaper()
            devnull = os.open(os.devnull, os.O_RDWR)
            handle = spawn_in(pid, args, env, cwd, uid, gid, False, (devnull, devnull, devnull),
                              **options)
            os.write(write_end, (handle.exec_error or "").encode())
            os.close(write_end)
            handle.wait(forward_signals=False)
            handle.cleanup()
        except BaseException as e:
            try:
                os.write(write_end, f"exec failed: {e}".encode())
            except OSError:
                pass
            os._exit(125)
        os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        data = os.read(read_end, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(read_end)
    return b"".join(chunks).decode() or None
