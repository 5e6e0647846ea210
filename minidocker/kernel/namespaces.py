"""Namespaces by name: what each one isolates, and how to make or join one.

A namespace wraps one kind of global resource so that the processes inside see their
own copy. Each process's namespaces are files under ``/proc/PID/ns/``; two processes
share a namespace exactly when those files have the same inode. Opening such a file
and passing it to ``setns(2)`` is how ``docker exec`` (and :func:`enter`) gets in.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

from . import syscalls

#: Namespace kinds by the names ``/proc/PID/ns/`` and ``unshare(1)`` use.
FLAGS: dict[str, int] = {
    "mnt": syscalls.CLONE_NEWNS,
    "uts": syscalls.CLONE_NEWUTS,
    "ipc": syscalls.CLONE_NEWIPC,
    "net": syscalls.CLONE_NEWNET,
    "pid": syscalls.CLONE_NEWPID,
    "user": syscalls.CLONE_NEWUSER,
    "cgroup": syscalls.CLONE_NEWCGROUP,
}

#: The order to join namespaces in. The user namespace comes first because joining it
#: grants the capabilities needed to join the others; mnt comes last because after it
#: the paths under /proc may no longer be the host's.
JOIN_ORDER = ("user", "ipc", "uts", "net", "pid", "cgroup", "mnt")


def flags_for(kinds) -> int:
    """OR together the ``CLONE_NEW*`` flags for namespace names like ``["pid", "uts"]``."""
    value = 0
    for kind in kinds:
        try:
            value |= FLAGS[kind]
        except KeyError:
            raise ValueError(f"unknown namespace kind {kind!r}; known: {', '.join(FLAGS)}") from None
    return value


def unshare(kinds) -> None:
    """Put the calling process into new namespaces of the given kinds."""
    syscalls.unshare(flags_for(kinds))


def ns_path(pid: int | str, kind: str) -> str:
    return f"/proc/{pid}/ns/{kind}"


def same(pid_a: int | str, pid_b: int | str, kind: str) -> bool:
    """True when both processes are in the same namespace of ``kind`` (same inode)."""
    a, b = os.stat(ns_path(pid_a, kind)), os.stat(ns_path(pid_b, kind))
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def enter(pid: int, kinds=JOIN_ORDER) -> None:
    """Join the namespaces of process ``pid`` (those of ``kinds`` that differ from ours).

    All the files are opened *before* the first ``setns``: once we are in the target's
    mount namespace, ``/proc/PID`` may mean something else. Joining our own namespace
    again is skipped because the kernel refuses to re-enter the current user namespace.
    """
    with ExitStack() as stack:
        fds = []
        for kind in JOIN_ORDER:
            if kind not in kinds or same(pid, "self", kind):
                continue
            fd = os.open(ns_path(pid, kind), os.O_RDONLY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fds.append((kind, fd))
        for kind, fd in fds:
            syscalls.setns(fd, FLAGS[kind])
