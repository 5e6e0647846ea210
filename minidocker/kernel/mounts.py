"""Mount steps, one function each, as a container runtime takes them.

The kernel rule behind most of this file is *mount propagation*. On systemd machines
``/`` is a *shared* mount, so a mount made under it in one mount namespace is copied
into every peer namespace. A new mount namespace starts as a copy of its parent's, with
the same propagation, so a container must first make its whole tree *private*
(:func:`make_private`), or its mounts leak out onto the host.
"""

from __future__ import annotations

import errno
import os
from typing import Callable

from . import syscalls
from .syscalls import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
                       MS_RDONLY, MS_REC, MS_REMOUNT)


def make_private(path: str = "/") -> None:
    """Stop mount events under ``path`` from propagating in or out (``mount --make-rprivate``)."""
    syscalls.mount(None, path, None, MS_REC | MS_PRIVATE)


def bind_mount(source: str, target: str, readonly: bool = False, recursive: bool = True,
               flags: int = 0) -> None:
    """Make ``source`` visible at ``target`` too (``mount --rbind``; ``--bind`` with
    ``recursive=False``: then the mounts below ``source`` do not come along).

    A bind mount ignores per-mount flags on the first call: the kernel applies
    ``MS_RDONLY`` (and ``MS_NOSUID``, ``MS_NODEV``, ``MS_NOEXEC``..., given in ``flags``)
    to a bind mount only on a remount, hence the second call. The container runtime
    mounts volumes and the /etc files this way.
    """
    syscalls.mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    extra = flags | (MS_RDONLY if readonly else 0)
    if extra:
        syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | extra)


def mount_proc(target: str = "/proc") -> None:
    """Mount a procfs at ``target``. procfs shows the PID namespace of the process that
    mounts it, so a fresh one inside a new PID namespace lists only that namespace's
    processes: what ``unshare --mount-proc`` and every container do."""
    syscalls.mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_sysfs(target: str = "/sys") -> None:
    """Mount a fresh sysfs at ``target``.

    sysfs shows the network devices of the network namespace of the process that
    *mounts* it, fixed at mount time (``/sys/class/net``), just as procfs shows the PID
    namespace of its mounter. So after ``unshare(CLONE_NEWNET)`` the /sys mounted at
    boot still lists the host's devices; only a sysfs mounted from inside the new
    namespace (in a mount namespace of its own, so the host's /sys is left alone)
    agrees with ``ip link``. ``ip netns exec`` and every container runtime do this."""
    syscalls.mount("sysfs", target, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_tmpfs(target: str, options: str = "mode=755", flags: int = MS_NOSUID) -> None:
    """Mount a RAM-backed tmpfs at ``target`` (used for /dev, /dev/shm, --tmpfs)."""
    syscalls.mount("tmpfs", target, "tmpfs", flags, options)


def mount_overlay(lowerdirs: list[str], upperdir: str, workdir: str, target: str,
                  volatile: bool = False) -> None:
    """Stack image layers into one root filesystem with overlayfs.

    ``lowerdirs`` are read-only and listed top-most first (the kernel's order, the
    reverse of an image's layer list); writes go to ``upperdir``; ``workdir`` is
    overlayfs's scratch space and must be on the same filesystem as ``upperdir``.
    Deleting a lower file leaves a *whiteout* (a 0:0 character device) in the upper dir.

    ``volatile`` (Linux 5.10+) makes overlayfs ignore fsync and syncfs, including the
    sync of the *whole* upper filesystem that an unmount otherwise does. After a crash
    such an upper dir cannot be mounted again: for throw-away containers only (podman
    uses it for ``run --rm``).
    """
    data = f"lowerdir={':'.join(lowerdirs)},upperdir={upperdir},workdir={workdir}"
    if volatile:
        data += ",volatile"
    syscalls.mount("overlay", target, "overlay", 0, data)


def umount(target: str, lazy: bool = False) -> None:
    """Unmount ``target`` (lazily with ``lazy=True``: detach now, free when unused)."""
    syscalls.umount2(target, MNT_DETACH if lazy else 0)


def mountpoints() -> list[str]:
    """The mount points this process sees, from ``/proc/self/mountinfo`` (field 5)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash as octal
            points.append(raw.encode().decode("unicode_escape"))
    return points


def is_mountpoint(path: str) -> bool:
    return os.path.realpath(path) in mountpoints()


#: The kernel's own limit on symlinks followed while resolving one path (ELOOP).
MAX_SYMLINKS = 40


def resolve_in_root(path: str, readlink: Callable[[str], str | None],
                    follow_last: bool = True) -> str:
    """Resolve ``path`` the way the kernel would inside a container whose ``/`` is an
    image's tree: returns the resolved path, absolute in that tree (``/etc/hosts``).

    ``readlink(rel)`` says what the tree holds at ``rel`` (relative, no leading slash):
    a symlink's target, or ``None`` for anything else (or nothing). The runtime passes
    one that reads a rootfs directory, the builder one that reads an image's layers.

    The rules: ``..`` never climbs above the root; an absolute link target restarts at
    the root, not at the host's ``/``; at most :data:`MAX_SYMLINKS` hops (ELOOP).
    Resolved naively on the host, a link such as ``/etc -> /`` or ``/proc -> ../../..``
    would send a mount target out of the rootfs (CVE-2014-6407 in Docker).
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        target = readlink("/".join(resolved + [part])) if (parts or follow_last) else None
        if target is not None:
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return "/" + "/".join(resolved)
