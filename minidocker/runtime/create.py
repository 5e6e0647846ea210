"""Create and start ONE container from an OCI bundle: the fork/unshare/exec dance.

Three processes take part (as in runc, where ``runc init`` plays both children)::

    caller (runtime parent)       becomes a *child subreaper*, makes the cgroup,
      │                           then talks to the children over a unix socket
      └─ intermediate child       joins the cgroup, joins namespaces given by path,
           │                      unshares mnt/uts/ipc/net/pid/cgroup, forks, exits
           └─ container init      PID 1 of the new PID namespace: mounts, pivot_root,
                                  hostname, lo up, limits, user, capabilities... then waits
                                  for "go" and execs the user's command

Why an intermediate? ``unshare(CLONE_NEWPID)`` never moves the caller: only the next
child is born in the new PID namespace (as PID 1). The intermediate does the unsharing
and the fork so that the caller itself stays in the host's namespaces; it exits at
once, and because the caller is a subreaper, PID 1 is re-parented to the caller, which
can ``waitpid`` it directly.

The socket carries small JSON messages ("my pid is N", "ready", "error: ...") and, for
a terminal, the pty's master fd (``SCM_RIGHTS``). The child's end is close-on-exec:
when ``execve`` succeeds, the caller reads end-of-file; when it fails, the caller reads
the error (``exec: "foo": executable file not found in $PATH``, exit 127).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading

from ..errors import MinidockerError
from ..kernel import capabilities, namespaces, netdev, syscalls
from . import process as proc_steps
from . import pty as ptys
from . import resources
from . import rootfs_setup as rootfs_steps
from . import seccomp
from .spec import DEFAULT_DEVICES, load_spec, namespace_entries, rootfs_path

#: Signals the caller passes on to the container while it waits (Docker's sig-proxy).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)

EXIT_SETUP_FAILED = 125


# --------------------------------------------------------------------------- messages
def send_message(sock: socket.socket, message: dict, fds=()) -> None:
    """One JSON message (one SOCK_SEQPACKET datagram), optionally carrying fds."""
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive_message(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """The next message and the fds that came with it; ``(None, [])`` at end-of-file."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 65536, 4)
            break
        except InterruptedError:
            continue
    if not data:
        return None, list(fds)
    return json.loads(data), list(fds)


def describe_error(error: BaseException) -> str:
    """One line for the user: ``mount /x (bind): Operation not permitted``, without
    Python's ``[Errno 1]`` prefix, but with the file name when the error has one."""
    if isinstance(error, OSError) and error.strerror:
        name = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{name}"
    if isinstance(error, (MinidockerError, ValueError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _report_and_exit(sock: socket.socket, error: BaseException) -> None:
    """In a child: tell the caller what went wrong, then exit without running any of
    the caller's Python cleanup (``os._exit``): we are a copy of the caller."""
    if isinstance(error, proc_steps.ExecError):
        code, message = error.code, error.message
    else:
        code, message = EXIT_SETUP_FAILED, describe_error(error)
    try:
        send_message(sock, {"error": message, "code": code})
    except OSError:
        pass
    os._exit(code)


def reset_signals() -> None:
    """Give the command default signal handling and an empty signal mask.

    ``execve`` resets *handled* signals to default but keeps *ignored* ones ignored, and
    Python ignores SIGPIPE: without this, ``yes | head -1`` in the container would
    never end.
    """
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def setup_stdio(stdio) -> None:
    """Make the given fds the child's 0, 1 and 2 (inheritable across exec).

    They are first copied out of the way, so that e.g. ``stdout=0`` cannot be
    overwritten before it is used.
    """
    copies = [os.dup(fd) for fd in stdio]
    for target, fd in enumerate(copies):
        os.dup2(fd, target, inheritable=True)
    for fd in copies:
        os.close(fd)


def close_fds_except(keep) -> None:
    """Close every fd but 0-2 and ``keep``: the caller's open files (its logs, sockets,
    the image store) must not leak into the container."""
    keep = set(keep) | {0, 1, 2}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


# --------------------------------------------------------------------------- the process
class ContainerProcess:
    """The caller's handle on a created container.

    ``pid`` is the host pid of the container's PID 1; ``master_fd`` the pty master when
    the spec asks for a terminal; after :meth:`wait`: ``exit_code``, ``oom_killed``,
    and ``exec_error`` (Docker's message) if the command could not be executed.
    """

    def __init__(self, container_id: str, spec: dict, bundle: str, cgroup=None):
        self.id = container_id
        self.spec = spec
        self.bundle = bundle
        self.cgroup = cgroup
        self.pid: int | None = None
        self.master_fd: int | None = None
        self.exit_code: int | None = None
        self.exec_error: str | None = None
        self.oom_killed = False
        self.started = False
        self._sock: socket.socket | None = None
        self._forwarding: dict | None = None  # handlers replaced by start(); wait() restores

    def __repr__(self):
        return f"<ContainerProcess {self.id} pid={self.pid} exit={self.exit_code}>"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the container's PID 1 (which, like every PID 1, ignores
        signals it has no handler for, SIGKILL aside)."""
        if self.pid and self.exit_code is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, forward_signals: bool = True) -> int:
        """Wait for PID 1 to end; return its exit code (128+N if killed by signal N).

        Meanwhile the caller's SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 are passed
        on to the container. When PID 1 exits, the kernel kills every other process of
        its PID namespace; then the cgroup is removed.
        """
        if self.exit_code is not None:
            return self.exit_code
        # start() may already forward (it must: see there); else forward from now on.
        previous, self._forwarding = self._forwarding, None
        if previous is None:
            previous = _forward_signals(self.pid) if forward_signals else {}
        try:
            try:
                _, status = os.waitpid(self.pid, 0)
                code = proc_steps.exit_code_of(status)
            except ChildProcessError:
                code = 137  # reaped by someone else: we cannot know; assume killed
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.exit_code = code
        self._read_exec_error()
        if self.cgroup is not None:
            try:
                self.oom_killed = self.cgroup.oom_killed()
            except Exception:
                self.oom_killed = False
        self._release_cgroup()
        return code

    def cleanup(self) -> None:
        """Free what the handle still holds: the socket, the pty master, the cgroup
        (killing what is left in it). Safe to call more than once."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.master_fd is not None:
            try:
                os.close(self.master_fd)
            except OSError:
                pass
            self.master_fd = None
        if self.exit_code is None and self.pid:
            self.kill(signal.SIGKILL)
            self.wait(forward_signals=False)
        for sig, handler in (self._forwarding or {}).items():
            signal.signal(sig, handler)
        self._forwarding = None
        self._release_cgroup()

    # -- internals
    def _read_exec_error(self) -> None:
        if self._sock is None:
            return
        try:
            self._sock.setblocking(False)
            message, fds = receive_message(self._sock)
            for fd in fds:
                os.close(fd)
            if message and "error" in message and self.exec_error is None:
                self.exec_error = message["error"]
        except (BlockingIOError, OSError, ValueError):
            pass
        self._sock.close()
        self._sock = None

    def _release_cgroup(self) -> None:
        if self.cgroup is None:
            return
        cg, self.cgroup = self.cgroup, None
        if cg.pids():
            cg.kill_all()
        cg.remove()


def _forward_signals(pid: int) -> dict:
    """Install handlers passing our signals on to ``pid``; returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    return {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}


# --------------------------------------------------------------------------- create/start
#: How long the setup of a container's PID 1 may take before ``create`` gives up.
SETUP_TIMEOUT = 60.0


def create(bundle_dir: str, container_id: str, stdin: int = 0, stdout: int = 1,
           stderr: int = 2) -> ContainerProcess:
    """Create the container of the OCI bundle ``bundle_dir``; do not run its command yet.

    Returns once the namespaces exist and PID 1 is set up and blocked before
    ``execve`` (like ``runc create``): now is the time to put a veth into its network
    namespace (``/proc/<proc.pid>/ns/net``). :func:`start` lets it run. On any error
    the half-made container is taken down again and :class:`MinidockerError` raised.
    """
    bundle_dir = os.path.abspath(bundle_dir)
    spec = load_spec(bundle_dir)
    rootfs = rootfs_path(spec, bundle_dir)
    cgroup = resources.create_cgroup(spec, container_id)
    handle = ContainerProcess(container_id, spec, bundle_dir, cgroup)
    try:
        capabilities.set_child_subreaper()
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        handle._sock = parent_end
        intermediate = os.fork()
        if intermediate == 0:
            parent_end.close()
            _intermediate_child(spec, rootfs, cgroup, child_end, (stdin, stdout, stderr))
        child_end.close()
        _handshake(handle, intermediate)
    except BaseException:
        handle.cleanup()
        raise
    return handle


def collect_setup_messages(sock: socket.socket, intermediate: int) -> dict:
    """Read what the children report during setup, in whatever order it arrives.

    The intermediate child sends ``{"pid": N}`` and exits; PID 1 sends ``{"ready":
    true}`` (with the pty master fd) or ``{"error": ...}``. The two write to the same
    socket independently, so PID 1 may well be ready before its parent has said who it
    is. Reading stops when the pid and an outcome are known, or at end-of-file (both
    children gone). The intermediate child is reaped here: from then on PID 1 is our
    child (we are its subreaper).
    """
    report = {"pid": None, "ready": False, "error": None, "fds": []}
    sock.settimeout(SETUP_TIMEOUT)     # a child stuck in the kernel must not hang us
    try:
        while report["pid"] is None or not (report["ready"] or report["error"]):
            try:
                message, fds = receive_message(sock)
            except TimeoutError:
                os.kill(intermediate, signal.SIGKILL)
                report["error"] = report["error"] or \
                    f"the container's init did not report within {SETUP_TIMEOUT:g}s"
                break
            if message is None:
                break
            if "pid" in message:
                report["pid"] = message["pid"]
            if message.get("ready"):
                report["ready"] = True
                report["fds"] = fds
            elif "error" in message:
                report["error"] = message["error"]
                for fd in fds:
                    os.close(fd)
    finally:
        os.waitpid(intermediate, 0)
    return report


def _handshake(handle: ContainerProcess, intermediate: int) -> None:
    """Wait for PID 1 to be set up (or to fail), and learn its host pid."""
    report = collect_setup_messages(handle._sock, intermediate)
    handle.pid = report["pid"]
    if report["fds"]:
        handle.master_fd = report["fds"][0]
    if report["ready"] and handle.pid:
        return
    if handle.pid:
        _, status = os.waitpid(handle.pid, 0)
        handle.exit_code = proc_steps.exit_code_of(status)
    reason = report["error"] or "the runtime's child died"
    raise MinidockerError(f"container setup failed: {reason}")


def start(proc: ContainerProcess, forward_signals: bool = True) -> None:
    """Let the created container exec its command (``runc start``).

    Returns once ``execve`` has succeeded or failed; in the latter case
    ``proc.exec_error`` holds Docker's message and :meth:`~ContainerProcess.wait`
    returns 126 or 127.

    The caller's signals are passed on to the container from *before* the command
    runs until :meth:`~ContainerProcess.wait` returns: a SIGTERM that arrives between
    the two would otherwise kill the caller with Python's default action, and leave
    the container running with nobody waiting for it.
    """
    if proc.started:
        raise MinidockerError(f"container {proc.id} already started")
    proc.started = True
    if proc._sock is None:
        raise MinidockerError(f"container {proc.id} cannot be started: its init is gone")
    if forward_signals and proc._forwarding is None:
        proc._forwarding = _forward_signals(proc.pid)
    try:
        proc._sock.send(b"go")
    except OSError as e:
        raise MinidockerError(f"container {proc.id} cannot be started: {e.strerror}") from None
    message, fds = receive_message(proc._sock)
    for fd in fds:
        os.close(fd)
    if message and "error" in message:
        proc.exec_error = message["error"]
    proc._sock.close()
    proc._sock = None


# --------------------------------------------------------------------------- the children
def _intermediate_child(spec: dict, rootfs: str, cgroup, sock: socket.socket, stdio) -> None:
    """Join the cgroup, join/unshare the namespaces, fork PID 1, report its pid, exit."""
    try:
        entries = namespace_entries(spec)
        if cgroup is not None:
            # Before unsharing the cgroup namespace: its root is fixed at our group then.
            cgroup.join()
        join_namespaces([(kind, path) for kind, path in entries if path])
        new_kinds = [kind for kind, path in entries if not path]
        if new_kinds:
            namespaces.unshare(new_kinds)
        pid = os.fork()
        if pid == 0:
            _container_init(spec, rootfs, sock, stdio, dict(entries))
        send_message(sock, {"pid": pid})
    except BaseException as e:
        _report_and_exit(sock, e)
    os._exit(0)


def join_namespaces(entries) -> None:
    """``setns`` into each ``(kind, path)``: e.g. another container's network namespace
    for ``--network container:X``. All files are opened before the first join."""
    order = {kind: i for i, kind in enumerate(namespaces.JOIN_ORDER)}
    opened = []
    try:
        for kind, path in sorted(entries, key=lambda e: order[e[0]]):
            opened.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        for kind, fd in opened:
            syscalls.setns(fd, namespaces.FLAGS[kind])
    finally:
        for _, fd in opened:
            os.close(fd)


def _container_init(spec: dict, rootfs: str, sock: socket.socket, stdio, entries: dict) -> None:
    """PID 1: build the container around us, wait for "go", exec the command."""
    try:
        process = spec["process"]
        setup_stdio(stdio)
        os.setsid()  # a session of its own: the caller's terminal is not ours
        devices = DEFAULT_DEVICES + list(spec.get("linux", {}).get("devices", []))
        rootfs_steps.prepare_rootfs(spec, rootfs, "cgroup" in entries, devices)
        rootfs_steps.pivot_into(rootfs)
        master = None
        if process.get("terminal"):
            master = open_console()
        apply_sysctl(spec.get("linux", {}).get("sysctl") or {})
        rootfs_steps.finalize_rootfs(spec)
        if spec.get("hostname") and "uts" in entries:
            syscalls.sethostname(spec["hostname"])
        if "net" in entries and not entries["net"]:
            # A new network namespace has only ``lo``, and it is down: even 127.0.0.1
            # fails. runc brings it up here too (its "loopback" network), while we
            # still hold CAP_NET_ADMIN; the engine adds any other interface.
            netdev.set_link_up("lo")
        if process.get("oomScoreAdj") is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(process["oomScoreAdj"]))
        proc_steps.apply_rlimits(process.get("rlimits"))
        cwd = process.get("cwd") or "/"
        os.makedirs(cwd, exist_ok=True)  # Docker creates a missing working dir
        if spec.get("linux", {}).get("seccomp"):
            # The last moment: the filter refuses mount/unshare/setns..., all done now.
            seccomp.install(spec["linux"]["seccomp"])
        proc_steps.become_user(process.get("user", {}), process.get("capabilities"),
                               bool(process.get("noNewPrivileges")))
        os.chdir(cwd)
        env = proc_steps.env_dict(process.get("env"))
        env.setdefault("HOME", proc_steps.home_of(os.getuid()))
        close_fds_except({sock.fileno()} | ({master} if master is not None else set()))
        send_message(sock, {"ready": True}, [master] if master is not None else ())
        if master is not None:
            os.close(master)
        if sock.recv(16) != b"go":
            os._exit(EXIT_SETUP_FAILED)  # the caller went away without starting us
        reset_signals()
        proc_steps.exec_command(process["args"], env)
    except BaseException as e:
        _report_and_exit(sock, e)


def open_console() -> int:
    """For ``process.terminal``: a pty from the container's own devpts; the slave becomes
    our controlling terminal, stdio and ``/dev/console``; the master fd is returned
    (to be handed to the caller)."""
    master, slave = ptys.open_pty_in("/dev/pts")
    ptys.attach_to_terminal(slave)
    console = "/dev/console"
    if not os.path.lexists(console):
        with open(console, "w"):
            pass
    syscalls.mount(slave, console, None, syscalls.MS_BIND)
    return master


def apply_sysctl(values: dict) -> None:
    """``linux.sysctl`` (``docker run --sysctl``): written to /proc/sys before it
    becomes read-only; only namespaced keys make sense (net.*, kernel.shm*, ...)."""
    for key, value in values.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with open(path, "w") as f:
            f.write(str(value))
