"""The monitor: the one process that runs a container from start to exit.

Docker has ``containerd-shim`` for this job; here it is the ``minidocker run`` process
itself (attached) or a small daemon forked by ``run -d`` / ``start``. It

1. takes ``monitor.lock`` (held until the end: "the container is running" means "a
   monitor holds the lock", which stays true even if the state file is stale),
2. mounts the overlay root filesystem and writes the OCI bundle,
3. asks the runtime to *create* the container (namespaces exist, command not started),
4. wires the network into the new network namespace,
5. *starts* the command, relays its output to the terminal and to ``container.log``,
6. records the exit code and takes everything down again.
"""

from __future__ import annotations

import fcntl
import os
import select
import selectors
import signal
import sys
import threading

from ..crashpoint import reached as crash_point
from ..errors import MinidockerError
from ..kernel import cgroups
from . import links, volumes
from .containers import Container, delete_record, now_iso, resolve
from .volumes import remove_anonymous
from .logs import LogWriter
from .etc_files import copy_resolv_conf, etc_files, write_hosts, write_resolv_conf
from .overlay import mount_rootfs, umount_rootfs

# Some imports are made inside the functions that run a container, not above: ps,
# stop, rm and logs import this module too (through lifecycle.py) and need none of them.
# Measured on top of what `minidocker ps` imports: the runtime package ~12 ms (and
# bundle.py, which imports it), the network package ~16-20 ms (only a bridged container
# needs it: `run --network none` never loads it), engine/ociruntime.py ~1 ms (subprocess;
# only for --runtime with a runtime binary).

#: How long ``run -d`` / ``start`` wait for the monitor to say that the container runs.
START_TIMEOUT = 120.0

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


def take_monitor_lock(c: Container) -> int:
    fd = os.open(os.path.join(c.dir, "monitor.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise MinidockerError(f"container {c.id} is already running") from None
    return fd


def _uses_bridge(state: dict) -> bool:
    mode = state["HostConfig"]["NetworkMode"]
    return mode not in ("none", "host") and not mode.startswith("container:")


def prepare(c: Container, store) -> list[tuple[str, str]]:
    """Mount the root filesystem, write /etc files and the bundle's config.json; returns
    the extra /etc/hosts entries (legacy links, on the default bridge only)."""
    from .bundle import build_spec  # lazy: it imports the runtime (see the note on imports)
    mount_rootfs(c, store.layer_dirs(c.image_id))
    extra_env, extra_hosts, extra_mounts = [], [], []
    if links.legacy_links(c.state):
        extra_env = links.link_env(c.state)
        extra_hosts = links.hosts_entries(c.state)
    # --add-host / HostConfig.ExtraHosts: "NAME:IP" lines of /etc/hosts
    for entry in c.state["HostConfig"].get("ExtraHosts") or ():
        name, _, ip = entry.partition(":")
        extra_hosts.append((ip, name))
    extra_mounts, recorded = volumes.oci_mounts(c.state, c.rootfs)
    # Recorded at once: --volumes-from and rm -v read it, also while this container runs.
    c.update_fields(Mounts=recorded)
    volumes.log_mounts(c.id, recorded)
    etc_files(c, c.state["Config"]["Hostname"], extra_hosts)
    mode = c.state["HostConfig"]["NetworkMode"]
    if mode.startswith("container:"):
        copy_resolv_conf(c, resolve(mode.split(":", 1)[1]))
    build_spec(c, extra_env, extra_mounts)
    return extra_hosts


def connect_network(c: Container, pid: int, extra_hosts: list[tuple[str, str]]) -> None:
    """Give the container its bridge addresses if its network mode asks for them: one
    interface per network it is on (``network.endpoints_config``: the one it was run
    with, and those ``network connect`` added).

    ``lo`` needs nothing from us: the runtime brings it up in every new network
    namespace (runc does the same), so ``--network none`` does not even load the
    network package. Its /etc/hosts gets its own addresses under its hostname; on a
    user-defined network its /etc/resolv.conf names the network's DNS server, which
    answers its peers' names (``network.dns_servers``).
    """
    if not _uses_bridge(c.state):
        return
    from .. import network  # lazy: only for a bridge (see the note on imports above)
    settings = network.attach_container(c.state, pid)
    c.update_fields(NetworkSettings=settings)
    own = [(ep["IPAddress"], c.state["Config"]["Hostname"])
           for ep in settings.get("Networks", {}).values() if ep.get("IPAddress")]
    write_hosts(c, own, list(extra_hosts))
    servers = network.dns_servers(network.endpoints_config(c.state))
    if servers:
        write_resolv_conf(c, servers)


def keep_dns_servers(c: Container) -> threading.Event | None:
    """A thread that restarts the DNS server of the container's user-defined networks
    should it die (``network.keep_dns_running``); set the event returned to end it."""
    if not _uses_bridge(c.state):
        return None
    from .. import network  # lazy: only for a bridge
    stopped = threading.Event()
    threading.Thread(target=network.keep_dns_running, args=(c.id, stopped), daemon=True,
                     name="dns-keeper").start()
    return stopped


def disconnect_network(c: Container) -> None:
    if _uses_bridge(c.state):
        from .. import network  # lazy: only for a bridge
        network.detach_container(c.state)


def create_process(c: Container, stdin: int, stdout: int, stderr: int):
    """Ask the chosen runtime to create the container's init process: the built-in one
    in this process, or a runtime binary through runc's command line."""
    from . import ociruntime  # lazy: subprocess, for a runtime binary's verbs
    binary = ociruntime.resolve(c.state["HostConfig"].get("Runtime") or ociruntime.BUILTIN)
    if binary is not None:
        return ociruntime.OciRuntimeProcess.create(binary, c, stdin, stdout, stderr)
    from .. import runtime  # lazy: only when a container runs (see the note on imports)
    return runtime.create(c.bundle, c.id, stdin=stdin, stdout=stdout, stderr=stderr)


def start_process(c: Container, proc) -> None:
    if hasattr(proc, "binary"):
        proc.start()
    else:
        from .. import runtime  # lazy: only when a container runs
        runtime.start(proc)


def run(c: Container, store, attach: bool, on_started=None, attach_clients: int = 0,
        on_listening=None) -> int:
    """Run container ``c`` to the end and return its exit code (see the module doc).

    Detached (``attach=False``), the monitor listens on the container's attach socket
    (:mod:`minidocker.engine.attach`) and holds its input: a pipe with ``-i``, the pty with ``-t``.
    ``attach_clients``: how many clients to wait for before the command starts (they
    were told to connect by ``on_listening``), so that they see all of its output."""
    lock = take_monitor_lock(c)
    proc = None
    dns_keeper = None
    hub = None
    code = 125
    refused = ""
    if attach:
        c.emit("attach")   # as Docker: create, attach, start, die
    try:
        c.update_fields(NetworkSettings={})  # re-reads state.json; writes only if needed
        extra_hosts = prepare(c, store)
        cfg = c.state["Config"]
        tty_mode = bool(cfg.get("Tty"))
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdin = 0 if (attach and cfg.get("OpenStdin") and not tty_mode) else devnull
        stdin_w = None
        if not attach and cfg.get("OpenStdin") and not tty_mode:
            stdin, stdin_w = os.pipe2(os.O_CLOEXEC)   # attach clients write into it
        pipes = {}
        if tty_mode:
            proc = create_process(c, devnull, devnull, devnull)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            try:
                proc = create_process(c, stdin, out_w, err_w)
            finally:
                os.close(out_w)
                os.close(err_w)
                if stdin_w is not None:
                    os.close(stdin)
            pipes = {out_r: "stdout", err_r: "stderr"}
        os.close(devnull)
        if not attach:
            from .attach import AttachHub
            master = getattr(proc, "master_fd", None) if tty_mode else None
            hub = AttachHub(c.dir, stdin_fd=master if tty_mode else stdin_w, tty_fd=master,
                            stdin_once=bool(cfg.get("StdinOnce")))
            if on_listening:
                on_listening()
            if attach_clients:
                hub.wait_for_clients(attach_clients)
        connect_network(c, proc.pid, extra_hosts)
        dns_keeper = keep_dns_servers(c)
        start_process(c, proc)
        c.update_state(Status="running", Running=True, Pid=proc.pid, StartedAt=now_iso(),
                       ExitCode=0, OOMKilled=False, Error="")
        c.emit("start")
        crash_point("container-started")    # (the crash tests' "monitor killed")
        if on_started:
            on_started()
        log = LogWriter(c.log_path)
        try:
            if tty_mode:
                relay_terminal(proc, log, attach, interactive=attach and cfg.get("OpenStdin"),
                               hub=hub)
            else:
                relay_pipes(proc, pipes, log, attach, hub=hub)
        finally:
            log.close()
            if hub is not None:
                hub.close()
        code = proc.wait()
        error = getattr(proc, "exec_error", None)
        if error:
            c.state["State"]["Error"] = error
            if attach:
                print(f"minidocker: {error}", file=sys.stderr, flush=True)
        return code
    except BaseException as e:
        if hub is not None:
            hub.close()
        from .ociruntime import CommandNotRunnable  # lazy: see create_process
        if isinstance(e, CommandNotRunnable):
            # a runtime binary checked the command at create (as runc 1.1 does): the
            # container ends as the built-in runtime's does, with 126/127 and the error
            code, refused = e.exit_code, str(e)
            if attach:
                print(f"minidocker: {refused}", file=sys.stderr, flush=True)
            return code
        if proc is not None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                code = proc.wait()
            except (ProcessLookupError, ChildProcessError):
                pass
        if not isinstance(e, (MinidockerError, KeyboardInterrupt)) and isinstance(e, Exception):
            raise MinidockerError(f"failed to run container {c.short_id}: {e}") from e
        raise
    finally:
        if dns_keeper is not None:
            dns_keeper.set()
        finish(c, code, proc, getattr(proc, "exec_error", None) or refused)
        os.close(lock)
        auto_remove(c)


def finish(c: Container, code: int, proc=None, error: str = "") -> None:
    """Record the exit and take down what ``run`` set up (network, mounts, cgroup)."""
    oom = bool(getattr(proc, "oom_killed", False)) if proc is not None else False
    # Only a container that did run dies (a failed start has no "die" in Docker either).
    if c.state["State"].get("Running"):
        if oom:
            c.emit("oom")
        c.emit("die", exitCode=str(code))
    try:
        disconnect_network(c)
    finally:
        umount_rootfs(c)
        if proc is not None and hasattr(proc, "cleanup"):
            proc.cleanup()
        if os.path.isdir(c.dir):
            # As Docker: a stopped container has no address and publishes no ports.
            c.update(NetworkSettings={}, _PausedBy=None,
                     state=dict(Status="exited", Running=False, Paused=False, Pid=0,
                                ExitCode=code, OOMKilled=oom, Error=error,
                                FinishedAt=now_iso()))


def remove_cgroup(c: Container) -> None:
    """Kill whatever is left in the container's cgroup and delete the group. A group
    the kernel will not let go (a process stuck in uninterruptible sleep) is reported
    on stderr, not hidden."""
    cg = cgroups.open_cgroup(c.cgroup)
    try:
        if cg.exists():
            cg.kill_all()
            cg.remove()
    except OSError as e:
        print(f"minidocker: warning: container {c.short_id}: cannot remove its cgroup: {e}",
              file=sys.stderr)


def remove_stopped(c: Container, volumes: bool = False) -> None:
    """Every trace of a container that no longer runs goes: its overlay mount, its
    cgroup, its directory, and with ``volumes`` its anonymous volumes (``docker rm``).

    The record goes first (in one step: :func:`.containers.delete_record`), the
    volumes second: killed in between, an anonymous volume is left that no container
    uses (``volume prune`` finds it), never a container whose volume is gone."""
    umount_rootfs(c)
    remove_cgroup(c)
    crash_point("container-stopped")
    delete_record(c)
    if volumes:
        remove_anonymous(c.state)
    c.emit("destroy")


def auto_remove(c: Container) -> None:
    """``--rm``: the monitor removes its container once it has exited, attached or
    detached, and also when it failed to start (before a detached start reports the
    error). The one place ``--rm`` is handled. Done after the monitor has let go of
    ``monitor.lock``, so that a ``wait`` or ``stop`` blocked on it can still read the
    exit code."""
    if not c.state["HostConfig"].get("AutoRemove") or not os.path.isdir(c.dir):
        return
    try:
        c.reload()
    except FileNotFoundError:
        return  # ``rm -f`` got there first
    remove_stopped(c)


# ------------------------------------------------------------------------ I/O relay
def relay_pipes(proc, pipes: dict[int, str], log: LogWriter, attach: bool, hub=None) -> None:
    """Copy the container's stdout/stderr pipes to the log (and to ours when attached,
    or to the attach clients of ``hub``), forwarding our signals to the container
    meanwhile (Docker's ``--sig-proxy``)."""
    from ..runtime.pty import write_all  # lazy: only when a container runs
    previous = {}
    if attach:
        def forward(signum, _frame):
            try:
                os.kill(proc.pid, signum)
            except ProcessLookupError:
                pass
        for sig in FORWARDED_SIGNALS:
            previous[sig] = signal.signal(sig, forward)
    sel = selectors.DefaultSelector()
    for fd in pipes:
        sel.register(fd, selectors.EVENT_READ)
    if hub is not None:
        hub.register(sel)
    target = {"stdout": 1, "stderr": 2}
    open_pipes = set(pipes)
    try:
        while open_pipes:
            for key, _ in sel.select():
                if hub is not None and hub.owns(key):
                    hub.handle(key)
                    continue
                try:
                    data = os.read(key.fd, 65536)
                except InterruptedError:
                    continue
                if not data:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    open_pipes.discard(key.fd)
                    continue
                stream = pipes[key.fd]
                log.write(stream, data)
                if attach:
                    write_all(target[stream], data)
                if hub is not None:
                    hub.broadcast(target[stream], data)
    finally:
        sel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def relay_terminal(proc, log: LogWriter, attach: bool, interactive: bool, hub=None) -> None:
    """Copy between the container's pty and our terminal (raw mode, window size), or
    the attach clients of ``hub``."""
    import errno
    import termios
    import tty
    from ..runtime.pty import write_all  # lazy: only when a container runs
    master = proc.master_fd
    our_tty = attach and os.isatty(0)
    saved = None
    previous_winch = None
    if our_tty:
        def resize(*_):
            try:
                size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(master, termios.TIOCSWINSZ, size)
            except OSError:
                pass
        resize()
        previous_winch = signal.signal(signal.SIGWINCH, resize)
        if interactive:
            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop input typed ahead
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    if interactive:
        sel.register(0, selectors.EVENT_READ)
    if hub is not None:
        hub.register(sel)
    try:
        while True:
            events = sel.select()
            done = False
            for key, _ in events:
                if hub is not None and hub.owns(key):
                    hub.handle(key)
                elif key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except InterruptedError:
                        continue
                    except OSError as e:  # EIO: every slave fd is closed
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:
                        done = True
                        break
                    log.write("stdout", data)
                    if attach:
                        write_all(1, data)
                    if hub is not None:
                        hub.broadcast(1, data)
                else:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        continue
                    write_all(master, data)
            if done:
                break
    finally:
        sel.close()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)
        os.close(master)
        proc.master_fd = None


def start_detached(c: Container, store, attach_clients: int = 0, on_listening=None) -> None:
    """Fork a daemon monitor for ``c`` and return once the container's command runs.

    Double fork + ``setsid``: the monitor is not our child and has no terminal, so it
    outlives ``minidocker run -d``. It reports "started" (or the error) through a pipe.
    With ``attach_clients``, it first reports that its attach socket listens; we then
    call ``on_listening()`` (which gets that many clients connected), and the monitor
    starts the command once they are there.

    The forked monitor keeps nothing of ours but the report pipe: a long-lived caller
    (the API service) has client connections and a listening socket open, which must
    not live on in a monitor for as long as its container runs.
    """
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(r)
            os.setsid()
            if os.fork():
                os._exit(0)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            os.closerange(3, w)
            os.closerange(w + 1, _max_fd())
            code = _daemon_monitor(c, store, w, attach_clients)
        finally:
            os._exit(code)
    os.close(w)
    os.waitpid(child, 0)
    readable, _, _ = select.select([r], [], [], START_TIMEOUT)
    if not readable:
        # A monitor that does not get there is stopped, not left to start the
        # container behind the user's back later; the next command that looks at
        # the container reconciles it (lifecycle.reconcile).
        os.close(r)
        for pid in c.monitor_pids():
            os.kill(pid, signal.SIGKILL)
        raise MinidockerError(f"container {c.short_id} did not start within "
                              f"{START_TIMEOUT:g}s")
    with os.fdopen(r, "rb") as f:
        line = f.readline().decode().strip()
        if line == "listening":
            if on_listening:
                on_listening()
            line = f.readline().decode().strip()
    if line != "ok":
        raise MinidockerError(line.removeprefix("error:") or f"container {c.short_id} failed to start")


def _max_fd() -> int:
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 65536


def _daemon_monitor(c: Container, store, report_fd: int, attach_clients: int = 0) -> int:
    """The body of a detached monitor: no terminal, report through ``report_fd``."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    code = 0
    try:
        run(c, store, attach=False, on_started=lambda: os.write(report_fd, b"ok\n"),
            attach_clients=attach_clients,
            on_listening=(lambda: os.write(report_fd, b"listening\n")) if attach_clients else None)
    except BaseException as e:
        try:
            os.write(report_fd, f"error:{e}\n".encode())
        except OSError:
            pass
        code = 1
    return code
