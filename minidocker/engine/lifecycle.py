"""The container lifecycle, one short function per verb: start, stop, kill, wait, rm,
logs, top, and the clean-up of containers whose monitor died."""

from __future__ import annotations

import os
import signal
import sys
import time

from .. import paths
from ..errors import Conflict, InvalidInput
from . import monitor
from .containers import Container, list_containers
from .logs import read_records
from .etc_files import lookup_user


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


def reconcile(c: Container) -> Container:
    """A container marked running whose monitor is gone (killed, machine crashed): take
    down what it left (network, mounts, cgroup) and mark it exited, as Docker does on
    restart."""
    if c.state["State"].get("Running") and not c.monitor_alive():
        pid = c.state["State"].get("Pid")
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            monitor.finish(c, 255)
        finally:
            monitor.remove_cgroup(c)
    return c


def reconcile_all() -> list[Container]:
    """Reconcile every container, and let the network free what dead ones left."""
    containers = [reconcile(c) for c in list_containers()]
    # Lazy: the network package costs ~16-20 ms to import, and `run`, which imports
    # this module, must not pay for it with --network none.
    from .. import network
    network.cleanup_stale()
    return containers


def start(c: Container, store, attach: bool) -> int | None:
    """Start a created or exited container: attached returns its exit code. A ``--rm``
    container is removed by its monitor when it exits (:func:`.monitor.auto_remove`)."""
    reconcile(c)
    if c.state["State"]["Running"]:
        return None
    if attach:
        return monitor.run(c, store, attach=True)
    monitor.start_detached(c, store)
    return None


def kill(c: Container, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the container's PID 1 (``docker kill``)."""
    reconcile(c)
    if not c.state["State"]["Running"]:
        raise Conflict(f"Cannot kill container: {c.id}: Container {c.id} is not running")
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
    sig = parse_signal(c.state["Config"].get("StopSignal") or "SIGTERM")
    pid = c.state["State"]["Pid"]
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + max(timeout, 0)
    while time.monotonic() < deadline and c.monitor_alive():
        time.sleep(0.05)
    if c.monitor_alive():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    c.wait_for_monitor()
    _reload_unless_removed(c)


def wait(c: Container) -> int:
    """Block until the container stops; its exit code."""
    c.wait_for_monitor()
    return reconcile(c.reload()).state["State"]["ExitCode"]


def remove(c: Container, force: bool = False, volumes: bool = False) -> None:
    """``docker rm``: every trace of the container goes (mounts, cgroup, network, dir)."""
    reconcile(c)
    if c.state["State"]["Running"]:
        if not force:
            raise Conflict(f"You cannot remove a running container {c.id}. Stop the container "
                           "before attempting removal or force remove")
        kill(c, signal.SIGKILL)
        c.wait_for_monitor()
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
            interactive=False, detach=False) -> int:
    """``docker exec``: run another process inside a running container's namespaces and
    cgroup, with the container's environment plus ``env``."""
    # Lazy: the runtime package costs ~12 ms to import (create.py and bundle.py import
    # it too); ps, stop and rm import this module and never need it.
    from .. import runtime
    from .bundle import DEFAULT_PATH
    from .create import merge_env, parse_env
    reconcile(c)
    if not c.state["State"]["Running"]:
        raise Conflict(f"Container {c.id} is not running")
    cfg = c.state["Config"]
    uid, gid, extra_gids, home = lookup_user(c.rootfs, user if user is not None else cfg.get("User") or "")
    environment = merge_env(cfg["Env"], parse_env(env))
    if not any(e.startswith("PATH=") for e in environment):
        environment.insert(0, DEFAULT_PATH)
    # The new process gets what the container's own process got (its bundle says):
    # capabilities, no_new_privs and the system call filter.
    spec = paths.read_json(os.path.join(c.bundle, "config.json"))
    kwargs = dict(env=environment, cwd=workdir or cfg.get("WorkingDir") or "/", uid=uid, gid=gid,
                  additional_gids=extra_gids, terminal=tty, interactive=interactive, detach=detach,
                  capabilities=spec["process"]["capabilities"],
                  no_new_privileges=spec["process"].get("noNewPrivileges", False),
                  seccomp_profile=spec.get("linux", {}).get("seccomp"))
    return runtime.exec_process(c.state["State"]["Pid"], args, **kwargs)


