"""Capabilities: root's power, cut into ~40 pieces that can be kept or dropped one by one.

Since Linux 2.2, "root" is not one privilege but a set of *capabilities*
(``CAP_CHOWN``, ``CAP_NET_ADMIN``, ``CAP_SYS_ADMIN``, ...; see capabilities(7)). Each
thread carries five sets of them:

* **bounding**: the ceiling. A capability not in it can never be gained again, not even
  by executing a set-uid-root or file-capability program. Dropping from it
  (``prctl(PR_CAPBSET_DROP)``) is one-way.
* **permitted**: what the thread may switch on; **effective**: what the kernel checks
  right now.
* **inheritable** and **ambient**: what survives ``execve``. On exec, a process running
  as uid 0 gets ``permitted = inheritable | bounding`` (root's programs are treated as
  if every file capability were set), so for root *the bounding set decides*. A
  non-root process keeps only its ambient set, which is why Docker's ``--user 1000``
  containers show ``CapEff: 0``.

Docker keeps 14 capabilities (:data:`DOCKER_DEFAULT_CAPS`) and drops the rest, so
"root in a container" cannot load modules, change the clock, mount filesystems or
reconfigure the network. ``no_new_privs`` additionally makes sure that no ``execve``
(set-uid binaries, file capabilities) can ever raise privileges again.

Only the standard library (ctypes) is used here.
"""

from __future__ import annotations

import ctypes
import os

from .syscalls import _load_libc

#: Capability numbers from <linux/capability.h>, in order (the list index is the bit).
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: number for number, name in enumerate(CAP_NAMES)}

#: The capabilities Docker leaves a container (moby ``oci/caps/defaults.go``). Their
#: bitmask is 0xa80425fb: what ``grep CapEff /proc/self/status`` prints in a Docker
#: container running as root.
DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

# prctl(2) options
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90}
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}

_libc = _load_libc()  # not ctypes.util.find_library: it runs `ldconfig -p` in a child
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _check(result: int, call: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Call ``prctl(2)``, the kernel's "process control" switchboard."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5),
                  f"prctl({option}, {arg2}, {arg3}, {arg4}, {arg5})")


# --------------------------------------------------------------------------- names
def last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAP_NAMES) - 1


def number_of(name: str) -> int:
    """``"CAP_KILL"`` or ``"kill"`` -> 5; :class:`ValueError` for an unknown name."""
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    try:
        return CAP_NUMBERS[key]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def mask_of(names) -> int:
    """The bitmask of a list of capability names (as in ``/proc/PID/status``)."""
    mask = 0
    for name in names:
        mask |= 1 << number_of(name)
    return mask


def names_of(mask: int) -> list[str]:
    """The capability names whose bits are set in ``mask``, lowest bit first."""
    return [name for number, name in enumerate(CAP_NAMES) if mask >> number & 1]


def process_sets(pid: int | str = "self") -> dict[str, int]:
    """The five sets of a process as bitmasks, from ``/proc/PID/status``:
    ``{"CapInh": .., "CapPrm": .., "CapEff": .., "CapBnd": .., "CapAmb": ..}``."""
    sets = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, value = line.split(":")
                sets[key] = int(value, 16)
    return sets


# --------------------------------------------------------------------------- changing sets
def drop_bounding(keep) -> None:
    """Drop every capability not in ``keep`` from the bounding set, for good.

    Needs ``CAP_SETPCAP``; do it before giving up root, while we still hold it.
    """
    keep_numbers = {number_of(name) for name in keep}
    for number in range(last_cap() + 1):
        if number not in keep_numbers and _libc.prctl(PR_CAPBSET_READ, number, 0, 0, 0) == 1:
            prctl(PR_CAPBSET_DROP, number)


def bounding_set() -> int:
    """The calling thread's bounding set as a bitmask."""
    mask = 0
    for number in range(last_cap() + 1):
        if _libc.prctl(PR_CAPBSET_READ, number, 0, 0, 0) == 1:
            mask |= 1 << number
    return mask


def capget() -> tuple[int, int, int]:
    """``(effective, permitted, inheritable)`` of the calling thread, as bitmasks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(_SYS_CAPGET[os.uname().machine], ctypes.byref(header), data), "capget")
    join = lambda field: getattr(data[0], field) | getattr(data[1], field) << 32  # noqa: E731
    return join("effective"), join("permitted"), join("inheritable")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's effective, permitted and inheritable sets (bitmasks).

    The kernel's rules: permitted can only shrink; effective and inheritable must stay
    within permitted (inheritable also within bounding, unless we hold CAP_SETPCAP).
    Version 3 of the interface splits each 64-bit set into two 32-bit halves.
    """
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for half in (0, 1):
        shift = 32 * half
        data[half].effective = (effective >> shift) & 0xFFFFFFFF
        data[half].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[half].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYS_CAPSET[os.uname().machine], ctypes.byref(header), data),
           f"capset(effective={effective:#x}, permitted={permitted:#x}, inheritable={inheritable:#x})")


def set_ambient(names) -> None:
    """Make the ambient set exactly ``names``. An ambient capability must also be
    permitted and inheritable; it survives ``execve`` of ordinary (non-set-uid) programs,
    which is the only way a non-root process keeps a capability across exec."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for name in names:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number_of(name))


def set_keepcaps(keep: bool) -> None:
    """Keep the permitted set across the switch from uid 0 to another uid.

    Normally ``setuid(1000)`` empties the permitted and effective sets; runtimes switch
    this on for the moment of ``setuid`` so that they can still set the sets afterwards.
    """
    prctl(PR_SET_KEEPCAPS, 1 if keep else 0)


def set_no_new_privs() -> None:
    """Set ``no_new_privs``: from now on no ``execve`` can grant privileges (set-uid
    bits and file capabilities are ignored). It is inherited and cannot be unset."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def no_new_privs() -> bool:
    return prctl(PR_GET_NO_NEW_PRIVS) == 1


def set_child_subreaper() -> None:
    """Become a *child subreaper*: orphaned descendants are re-parented to us instead of
    to the host's PID 1, so we can ``waitpid`` a grandchild (a container's PID 1 whose
    own parent has exited)."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def is_child_subreaper() -> bool:
    """Are we a child subreaper? (``PR_GET_CHILD_SUBREAPER`` stores the flag at the
    address it is given.)"""
    flag = ctypes.c_int(0)
    prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag))
    return bool(flag.value)


class not_a_child_subreaper:
    """For the ``with`` block, orphans do not come to us: a daemon started from a
    subreaper (a container's monitor) by a double fork goes to the host's PID 1, which
    reaps it when it exits, instead of staying our zombie until we exit ourselves.

    The kernel re-parents an orphan when its parent exits, to the nearest ancestor that
    is a subreaper *at that moment*: the block must last until the middle process of the
    double fork has exited (and been reaped). A child we already have (the container's
    PID 1) stays ours: only orphaning moves a process."""

    def __enter__(self):
        self.was = is_child_subreaper()
        if self.was:
            prctl(PR_SET_CHILD_SUBREAPER, 0)
        return self

    def __exit__(self, *exc):
        if self.was:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        return False


def apply(bounding, effective, permitted, inheritable=(), ambient=()) -> None:
    """Give the calling process exactly these capability sets (lists of names).

    Capabilities this process does not hold itself (a VM or an outer container may have
    dropped some) are left out: nobody can grant what they do not have.
    """
    held = bounding_set()
    keep = lambda names: [n for n in names if held >> number_of(n) & 1]  # noqa: E731
    drop_bounding(keep(bounding))
    capset(mask_of(keep(effective)), mask_of(keep(permitted)), mask_of(keep(inheritable)))
    set_ambient(keep(ambient))
