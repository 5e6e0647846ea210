"""Which process owns something, told apart from a later process that got the same pid.

minidocker has no daemon: what a command holds (a paused container, a scratch file, an
address lease) is marked with the command's *identity*, so that a later command can tell
whether the owner is still alive. A pid alone is not an identity: when a process dies,
the kernel hands its number to a new process sooner or later (after a reboot, the same
small pids come back at once). The pair (pid, start time) is: the start time is field 22
of ``/proc/PID/stat`` (``starttime``, in clock ticks since boot, see proc(5)), and two
processes with one pid never started at the same tick.

A reboot makes every recorded identity dead, as it should: the clock restarts and the
pids are new.

Only the standard library is used (``tools/`` may import it from a plain checkout).
"""

from __future__ import annotations

import os


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (field 22 of ``/proc/PID/stat``), or None when there
    is no such process (a zombie still has one: it is gone once reaped)."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    # field 2, the command name, is in parentheses and may hold spaces or ")": split
    # after the last ")"; what follows starts at field 3, so field 22 is index 19.
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def identity(pid: int | None = None) -> dict:
    """``{"Pid": pid, "PidStart": start}`` of ``pid`` (default: this process), the form
    in which records (pause owners, leases) name their owner."""
    pid = os.getpid() if pid is None else pid
    return {"Pid": pid, "PidStart": start_time(pid)}


def alive(owner: dict | None) -> bool:
    """Is the process that ``owner`` (an :func:`identity`) names still running? A record
    without a start time (written by an older minidocker) trusts the pid alone."""
    if not owner or not owner.get("Pid"):
        return False
    now = start_time(owner["Pid"])
    if now is None:
        return False
    recorded = owner.get("PidStart")
    return recorded is None or recorded == now
