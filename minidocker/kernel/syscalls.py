"""The raw system calls a container is made of.

Everything Docker does to "contain" a process comes down to a handful of Linux system
calls. Python's :mod:`os` module has some of them (``os.unshare`` and ``os.setns``
only from Python 3.12 on); the rest we call straight from the C library with
:mod:`ctypes`. Each wrapper here is deliberately thin: one call, and on failure an
:class:`OSError` whose message names the call and its arguments, so that a learner
sees *which* kernel rule said no (``mount('overlay', '/x', ...): [Errno 1] ...``).

Read this file first: the rest of :mod:`minidocker.kernel` only combines these calls.
"""

from __future__ import annotations

import ctypes
import os
import platform

# --- clone(2)/unshare(2) flags: one bit per kind of namespace (<linux/sched.h>) -------
CLONE_NEWNS = 0x00020000      # mount namespace (the first one, hence the vague name)
CLONE_NEWCGROUP = 0x02000000  # cgroup namespace: /proc/self/cgroup is rooted at ours
CLONE_NEWUTS = 0x04000000     # hostname and domain name
CLONE_NEWIPC = 0x08000000     # System V IPC objects and POSIX message queues
CLONE_NEWUSER = 0x10000000    # user and group ids, and the capabilities tied to them
CLONE_NEWPID = 0x20000000     # process ids: the first child becomes PID 1
CLONE_NEWNET = 0x40000000     # network devices, addresses, routes, firewall rules
CLONE_NEWTIME = 0x00000080    # CLOCK_MONOTONIC / CLOCK_BOOTTIME offsets

# --- mount(2) flags (<linux/mount.h>) -----------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# --- umount2(2) flags -----------------------------------------------------------------
MNT_FORCE = 1
MNT_DETACH = 2   # lazy unmount: detach now, clean up when no longer busy



def _load_libc() -> ctypes.CDLL:
    # The usual name first: ctypes.util.find_library runs `ldconfig -p` in a child
    # process (~40 ms at every tool's start, and a surprise child for tests to see).
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library  # only here: it imports subprocess
        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.syscall.restype = ctypes.c_long

# pivot_root has no glibc wrapper: it is called by number (x86_64 155, aarch64 41).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203,
                   "s390x": 217, "riscv64": 41}


def _check(result: int, call: str) -> int:
    """Turn a C-style ``-1``/errno result into an :class:`OSError` naming ``call``."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces, one per ``CLONE_NEW*`` bit.

    The kernel rule: ``unshare`` changes the *caller's* namespaces at once, except for
    ``CLONE_NEWPID``: a process never changes its own PID, so only the children it
    forks afterwards live in the new PID namespace (the first one becomes PID 1). That
    is why ``unshare --pid`` needs ``--fork``. All kinds but the user namespace need
    ``CAP_SYS_ADMIN``; a user namespace can be made by anyone, and inside it the caller
    holds every capability over the namespaces it makes next.
    """
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that the open file ``fd`` (a ``/proc/PID/ns/*`` file) names.

    ``nstype`` 0 accepts any kind; a ``CLONE_NEW*`` value makes the kernel check that
    the file is that kind. As with :func:`unshare`, joining a PID namespace only
    affects children forked afterwards. A multi-threaded process cannot join a user or
    mount namespace (``EINVAL``): that is one reason container runtimes do this early.
    """
    _check(_libc.setns(fd, nstype), f"setns({fd}, {nstype:#x})")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """Attach a filesystem (or, with ``MS_BIND``, a directory) at ``target``.

    One call does several jobs depending on ``flags``: a new mount (``fstype`` and
    ``data`` such as overlay's ``lowerdir=...``), a bind mount (``MS_BIND``), a
    propagation change (``MS_PRIVATE``/``MS_SLAVE``/``MS_SHARED``, with ``MS_REC`` for
    the whole subtree), or a remount that changes flags (``MS_REMOUNT``; a read-only
    bind mount needs a second ``MS_BIND|MS_REMOUNT|MS_RDONLY`` call).
    """
    rc = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(rc, f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})")


def umount2(target: str, flags: int = 0) -> None:
    """Detach the filesystem mounted at ``target`` (``MNT_DETACH`` for a lazy unmount)."""
    _check(_libc.umount2(_b(target), flags), f"umount2({target!r}, {flags:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    """Make ``new_root`` the root mount of this mount namespace; the old root moves to
    ``put_old``.

    Unlike ``chroot``, which only changes how *this process* resolves ``/``,
    ``pivot_root`` swaps the mounts themselves, so the old root can then be unmounted
    and is gone for good: nothing inside can climb back out. The kernel's rules:
    ``new_root`` must be a mount point (bind-mount it onto itself if needed), neither
    it nor the current root may have shared propagation, and ``put_old`` must be at or
    under ``new_root``. runc's trick is ``pivot_root(".", ".")`` from inside the new
    root: the old root is stacked on top of the new one, and ``umount2(".",
    MNT_DETACH)`` takes it away.
    """
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {platform.machine()}")
    rc = _libc.syscall(number, _b(new_root), _b(put_old))
    _check(rc, f"pivot_root({new_root!r}, {put_old!r})")


def sethostname(name: str) -> None:
    """Set the hostname of the caller's UTS namespace (what ``uname -n`` prints)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname({name!r})")


# --- prctl(2) ---------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to the caller when its parent exits
    (``prctl(PR_SET_PDEATHSIG)``).

    A tool that forks a command and waits for it uses this in the child so that killing
    the tool (even with SIGKILL, which it cannot pass on) also ends the command. The
    kernel delivers it even to a PID 1 of a new PID namespace, because the sender (the
    dying parent) lives outside that namespace. The setting is cleared on fork, but
    kept across execve (unless the program is set-user-ID).
    """
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), f"prctl(PR_SET_PDEATHSIG, {sig})")
