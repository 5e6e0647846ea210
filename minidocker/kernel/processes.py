"""Is a process alive, and is it still the same process? What ``/proc/PID/stat`` says.

A pid names a process only while it lives: once it has exited and been reaped, the
kernel may give the same number to a new process (pids wrap around at
``/proc/sys/kernel/pid_max``). Whoever writes a pid down to check on it later (an
address lease, the owner of a scratch file) must also write down *when* that process
started - field 22 of ``/proc/PID/stat``, ``starttime``, in clock ticks since boot
(proc(5)). Pid and start time together name one process for the whole uptime.

A zombie (state ``Z``: exited, not yet reaped by its parent) counts as dead: it runs
nothing any more, and the kernel has already taken it out of its cgroups and
namespaces.
"""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` from field 3 (``state``) on, or None when there
    is no such process. Field 2, the command name, is in parentheses and may contain
    spaces and parentheses itself: the split is after its *last* ``)``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields if len(fields) > 19 else None


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (``starttime``, clock ticks since boot), or None
    when there is no such process. Store it next to a pid to recognise the process
    later (:func:`is_alive`)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, started: int | None = None) -> bool:
    """True while process ``pid`` exists and is not a zombie; with ``started`` (a
    :func:`start_time` noted earlier), only if it is still that same process and not
    a later one that was given the same pid."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


def identity(pid: int | None = None) -> dict:
    """``{"Pid": pid, "PidStart": start}`` of ``pid`` (default: this process): how a
    record (a pause's holder, a build's container, an address lease) names its owner."""
    pid = os.getpid() if pid is None else pid
    return {"Pid": pid, "PidStart": start_time(pid)}


def owner_alive(owner: dict | None) -> bool:
    """Is the process an :func:`identity` names still running (and the same one)? A
    record without a start time (from an older minidocker) trusts the pid alone."""
    if not owner or not owner.get("Pid"):
        return False
    return is_alive(owner["Pid"], owner.get("PidStart"))
