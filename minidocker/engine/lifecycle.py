"""The container lifecycle, one short function per verb: start, stop, kill, wait, rm,
pause, unpause, logs, top, and the clean-up of containers whose monitor died.

Every wait has a bound (a stuck process must give a one-line error, never a silent
hang), except ``docker wait``'s, whose whole job is to wait."""

from __future__ import annotations

import os
import signal
import sys
import time

from .. import paths
from ..errors import Conflict, InvalidInput, MinidockerError
from ..kernel import cgroups, processes
from . import freezer, monitor
from .containers import Container, list_containers
from .logs import read_records
from .etc_files import lookup_user

#: How long ``stop``, ``kill`` and ``rm -f`` wait for a monitor to finish once its
#: container got SIGKILL (the monitor then only unmounts and writes the exit code).
MONITOR_EXIT_TIMEOUT = 10.0


def parse_signal(name: str | int) -> int:
    """``KILL``, ``SIGKILL``, ``9`` -> 9."""
    text = str(name).upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise InvalidInput(f"invalid signal: {name}") from None


def reconcile(c: Container, removing: bool = False) -> Container:
    """Bring the record in line with what is really there, as Docker does when its
    daemon restarts. Every command that looks at a container calls this first.

    - A container marked running whose monitor is gone (killed, machine crashed):
      kill what is left in its cgroup, take down its network and mounts, and mark it
      exited (255). One that was to be removed when it stopped (``--rm``) is removed:
      its monitor, the one that would have, is dead.
    - A pause whose holder is gone (a killed ``commit``) is undone (:mod:`.freezer`).
    - A container that belonged to a command that is gone (a killed build's RUN
      step) is removed. (``removing``: called by :func:`remove` itself.)
    """
    if c.state["State"].get("Running") and not c.monitor_alive():
        # Not by the recorded pid: after a reboot that number names another process.
        # The cgroup holds exactly the container's processes (thawed first: on v1 a
        # frozen process does not die of SIGKILL).
        freezer.thaw_for_signal(c)
        try:
            monitor.finish(c, 255)
        finally:
            monitor.remove_cgroup(c)
        if c.state["HostConfig"].get("AutoRemove") and os.path.isdir(c.dir) and not removing:
            remove(c.reload(), force=True)
            return c
    elif c.state["State"].get("Paused"):
        freezer.reconcile(c)
    elif _left_set_up(c) and not c.monitor_alive():
        # A monitor killed while it set the container up (mounted, made the
        # cgroup, maybe wired the network) before it could record "running".
        freezer.thaw_for_signal(c)
        try:
            monitor.disconnect_network(c)
        finally:
            monitor.umount_rootfs(c)
            monitor.remove_cgroup(c)
    if not removing and _orphaned(c) and os.path.isdir(c.dir):
        remove(c, force=True)
    return c


def _orphaned(c: Container) -> bool:
    """A container that belongs to a command (``_Owner``: a build's RUN step) whose
    command is gone, and that no monitor runs: nobody will ever remove it but us."""
    owner = c.state.get("_Owner")
    return bool(owner) and not processes.owner_alive(owner) and not c.monitor_alive()


def _left_set_up(c: Container) -> bool:
    """Cheap signs that a container not marked running has things set up: its root
    filesystem is mounted (an overlay is a device of its own), its cgroup exists."""
    if os.path.ismount(c.rootfs):
        return True
    try:
        return cgroups.open_cgroup(c.cgroup).exists()
    except OSError:
        return False


def reconcile_all() -> list[Container]:
    """Reconcile every container, and let the network free what dead ones left."""
    containers = [reconcile(c) for c in list_containers()]
    containers = [c for c in containers if os.path.isdir(c.dir)]
    # Lazy: the network package costs ~16-20 ms to import, and `run`, which imports
    # this module, must not pay for it with --network none.
    from .. import network
    network.cleanup_stale()
    return containers


def start(c: Container, store, attach: bool, attach_clients: int = 0,
          on_listening=None) -> int | None:
    """Start a created or exited container: attached returns its exit code. A ``--rm``
    container is removed by its monitor when it exits (:func:`.monitor.auto_remove`).

    Detached, ``attach_clients`` clients (connected by ``on_listening``, called once the
    monitor's attach socket listens) see the output from the first byte: the API's
    attach-then-start (``docker run``, ``docker start -a``)."""
    reconcile(c)
    if c.state["State"].get("Paused"):
        raise Conflict("cannot start a paused container, try unpause instead")
    if c.state["State"]["Running"]:
        return None
    if attach:
        return monitor.run(c, store, attach=True)
    monitor.start_detached(c, store, attach_clients=attach_clients, on_listening=on_listening)
    return None


def kill(c: Container, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the container's PID 1 (``docker kill``); a paused container is
    thawed first, or the signal would wait for the thaw."""
    reconcile(c)
    if not c.state["State"]["Running"]:
        raise Conflict(f"Cannot kill container: {c.id}: Container {c.id} is not running")
    c.emit("kill", signal=str(int(sig)))
    freezer.thaw_for_signal(c)
    try:
        os.kill(c.state["State"]["Pid"], sig)
    except ProcessLookupError:
        pass


def stop(c: Container, timeout: float = 10) -> None:
    """``docker stop``: the stop signal (SIGTERM), then SIGKILL after ``timeout`` seconds.

    A process that is PID 1 of its namespace gets no default signal actions: a shell
    without a ``trap`` ignores SIGTERM, which is why ``stop`` so often waits the full
    ten seconds in Docker too.
    """
    reconcile(c)
    if not c.state["State"]["Running"]:
        return
    freezer.thaw_for_signal(c)
    sig = parse_signal(c.state["Config"].get("StopSignal") or "SIGTERM")
    pid = c.state["State"]["Pid"]
    c.emit("kill", signal=str(int(sig)))
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + max(timeout, 0)
    while time.monotonic() < deadline and c.monitor_alive():
        time.sleep(0.05)
    if c.monitor_alive():
        c.emit("kill", signal=str(int(signal.SIGKILL)))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _wait_after_kill(c)
    _reload_unless_removed(c)
    c.emit("stop")


def _wait_after_kill(c: Container, force: bool = False) -> None:
    """Wait (bounded) for the monitor of a container that got SIGKILL to finish. With
    ``force`` (``rm -f``), a monitor that does not (stopped, stuck) is killed too, and
    the container reconciled as if it had died."""
    if c.wait_for_monitor(MONITOR_EXIT_TIMEOUT):
        return
    holders = c.monitor_pids()
    if not force:
        who = f" (pid {', '.join(map(str, holders))})" if holders else ""
        raise MinidockerError(f"container {c.short_id}: its monitor{who} did not finish "
                              f"within {MONITOR_EXIT_TIMEOUT:g}s of SIGKILL")
    for pid in holders:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if not c.wait_for_monitor(MONITOR_EXIT_TIMEOUT):
        raise MinidockerError(f"container {c.short_id}: its monitor did not exit even "
                              "after SIGKILL")
    if _reload_unless_removed(c):
        reconcile(c, removing=force)


def wait(c: Container) -> int:
    """Block until the container stops; its exit code (no bound: that is the verb)."""
    c.wait_for_monitor()
    return reconcile(c.reload()).state["State"]["ExitCode"]


def pause(c: Container) -> None:
    """``docker pause``: freeze every process of the container (see :mod:`.freezer`)."""
    reconcile(c)
    freezer.pause(c)
    c.emit("pause")


def unpause(c: Container) -> None:
    """``docker unpause``."""
    reconcile(c)
    freezer.unpause(c)
    c.emit("unpause")


def remove(c: Container, force: bool = False, volumes: bool = False) -> None:
    """``docker rm``: every trace of the container goes (mounts, cgroup, network, dir)."""
    reconcile(c, removing=True)
    if not os.path.isdir(c.dir):
        return      # a --rm container that reconcile has just removed
    if c.state["State"]["Running"]:
        if not force:
            if c.state["State"].get("Paused"):
                raise Conflict(f"You cannot remove a paused container {c.id}. Unpause and then "
                               "stop the container before attempting removal or force remove")
            raise Conflict(f"You cannot remove a running container {c.id}. Stop the container "
                           "before attempting removal or force remove")
        kill(c, signal.SIGKILL)
        _wait_after_kill(c, force=True)
        if not _reload_unless_removed(c):
            return  # a --rm container: its monitor removed it on the way out
    monitor.remove_stopped(c, volumes=volumes)


def _reload_unless_removed(c: Container) -> bool:
    """Re-read the record after its monitor has exited; False if the monitor removed
    the container meanwhile (``--rm``)."""
    try:
        c.reload()
    except FileNotFoundError:
        return False
    return True


def logs(c: Container, follow: bool = False, timestamps: bool = False, tail: str = "all",
         out=None, err=None):
    """Replay ``container.log`` to our stdout/stderr; with ``follow`` keep going until the
    container stops."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    records = list(read_records(c.log_path))
    offset = records[-1][1] if records else 0
    if tail != "all":
        n = int(tail)
        records = records[-n:] if n else []

    def emit(rec):
        data = rec["log"]
        if timestamps:
            data = f"{rec['time']} {data}"
        stream = err if rec["stream"] == "stderr" else out
        stream.write(data.encode())
        stream.flush()

    for rec, _ in records:
        emit(rec)
    while follow:
        running = c.monitor_alive()
        for rec, offset in read_records(c.log_path, offset):
            emit(rec)
        if not running:
            break
        time.sleep(0.1)


def container_pids(c: Container) -> list[int]:
    """Host pids of the processes in the container's PID namespace."""
    pid = c.state["State"].get("Pid")
    if not c.state["State"].get("Running") or not pid:
        raise Conflict(f"container {c.id} is not running")
    try:
        target = os.stat(f"/proc/{pid}/ns/pid")
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/pid")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                pids.append(int(entry))
    return sorted(pids)


def exec_in(c: Container, args: list[str], *, env=(), user=None, workdir=None, tty=False,
            interactive=False, detach=False, exec_id: str | None = None) -> int:
    """``docker exec``: run another process inside a running container's namespaces and
    cgroup, with the container's environment plus ``env``.

    Events as Docker logs them: ``exec_create: CMD``, ``exec_start: CMD`` and, when we
    wait for it, ``exec_die`` with its exit code, all carrying the exec's id
    (``exec_id``, or a new one: the CLI has no exec records)."""
    from .. import runtime
    from .execs import exec_options
    reconcile(c)
    # user, working dir, environment, and what the container's own process got from
    # its bundle: capabilities, no_new_privs and the system call filter
    kwargs = dict(exec_options(c, user, workdir, env), terminal=tty, interactive=interactive,
                  detach=detach)
    exec_id = exec_id or os.urandom(32).hex()
    command = " ".join(args)
    c.emit(f"exec_create: {command}", execID=exec_id)
    c.emit(f"exec_start: {command}", execID=exec_id)
    code = runtime.exec_process(c.state["State"]["Pid"], args, **kwargs)
    if not detach:
        c.emit("exec_die", execID=exec_id, exitCode=str(code))
    return code


def restart(c: Container, store, timeout: float = 10) -> None:
    """``docker restart``: stop (the stop signal, then SIGKILL after ``timeout``), then
    start again, detached."""
    if c.state["State"].get("Running"):
        stop(c, timeout)        # (stop thaws a paused container first)
    start(c.reload(), store, attach=False)
    c.update_fields(RestartCount=int(c.reload().state.get("RestartCount") or 0) + 1)
    c.emit("restart")


def rename(c: Container, new_name: str) -> None:
    """``docker rename``: a new name, under the lock that guards names (two renames or
    a ``run --name`` cannot take the same one)."""
    from .. import paths
    from .containers import NAME_RE
    from ..errors import InvalidInput
    new_name = new_name.lstrip("/")
    if not new_name or not NAME_RE.match(new_name):
        raise InvalidInput(f"Invalid container name ({new_name}), only "
                           "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    old = c.name
    if new_name == old:
        raise InvalidInput(f"Renaming a container with the same name as its current name")
    with paths.locked("containers"):
        for other in list_containers():
            if other.name == new_name:
                raise Conflict(f'Conflict. The container name "/{new_name}" is already in use '
                               f'by container "{other.id}". You have to remove (or rename) '
                               f'that container to be able to reuse that name.')
        c.update_fields(Name=new_name)
    c.emit("rename", oldName="/" + old)


def wait_condition(c: Container, condition: str = "not-running", cancelled=None,
                   poll: float = 0.02) -> int:
    """``POST /containers/{id}/wait?condition=``: block until the container is
    ``not-running`` (at once if it is not running), has had its ``next-exit``, or is
    ``removed``; its exit code. ``cancelled()`` is polled: True gives up (the client
    went away) with ``InterruptedError``.

    The exit of a container removed at once (``--rm``) may never be seen in its state
    file: then the ``die`` event tells its exit code."""
    from .. import events
    if condition not in ("not-running", "next-exit", "removed"):
        from ..errors import InvalidInput
        raise InvalidInput(f"invalid condition: \"{condition}\"")
    since = time.time()
    reconcile(c)
    first = dict(c.state["State"])
    if condition == "not-running" and not first["Running"]:
        return first["ExitCode"]
    seen_exit = None
    stamp = None
    while True:
        if cancelled and cancelled():
            raise InterruptedError("wait cancelled")
        try:
            st = os.stat(c.state_path)
            if (st.st_ino, st.st_mtime_ns) != stamp:
                stamp = (st.st_ino, st.st_mtime_ns)
                state = c.reload().state["State"]
                if state["Running"] and not c.monitor_alive():
                    state = reconcile(c).state["State"]
                exited = not state["Running"] and state.get("FinishedAt") and \
                    state.get("FinishedAt") != first.get("FinishedAt")
                if not state["Running"] and (exited or condition == "not-running"):
                    if condition != "removed":
                        return state["ExitCode"]
                    seen_exit = state["ExitCode"]
                if exited:
                    seen_exit = state["ExitCode"]
        except (FileNotFoundError, ValueError):
            if not os.path.isdir(c.dir):            # removed
                if seen_exit is not None:
                    return seen_exit
                for event in events.read(since=since, filters={"container": [c.id],
                                                               "event": ["die"]}):
                    seen_exit = int(event["Actor"]["Attributes"].get("exitCode", 0))
                return seen_exit if seen_exit is not None else first["ExitCode"]
        time.sleep(poll)


def top(c: Container, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
    """``docker top``: run ``ps ps_args`` on the host and keep the lines of the
    container's processes (found by the PID column), as Docker's daemon does."""
    import shlex
    import subprocess
    reconcile(c)
    if not c.state["State"]["Running"]:
        raise Conflict(f"Container {c.id} is not running")
    pids = set(container_pids(c))
    args = shlex.split(ps_args or "-ef")
    out = subprocess.run(["ps", *args], capture_output=True, text=True)
    if out.returncode != 0:
        from ..errors import InvalidInput
        raise InvalidInput(f"Error running ps: {out.stderr.strip() or 'exit status %d' % out.returncode}")
    lines = out.stdout.splitlines()
    if not lines:
        return [], []
    titles = lines[0].split()
    if "PID" not in titles:
        from ..errors import InvalidInput
        raise InvalidInput(f"Couldn't find PID field in ps output")
    pid_col = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            if int(fields[pid_col]) in pids:
                rows.append(fields)
        except (ValueError, IndexError):
            continue
    return titles, rows
