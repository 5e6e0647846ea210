"""seccomp: a filter on which system calls the container may make at all.

Capabilities decide what root *may do* with a system call; seccomp (secure computing)
can refuse the call itself, before the kernel looks at anything else. The filter is a
tiny program for the kernel's classic BPF machine: for every system call it reads the
``struct seccomp_data`` (the call's number at offset 0, the CPU architecture at offset
4, then the arguments) and returns a verdict: allow, fail with an errno, or kill.
It is installed with ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program)``, is
inherited by every child and kept across ``execve``, and can never be removed.

The spec describes it in ``linux.seccomp`` (the format libseccomp and runc read)::

    {"defaultAction": "SCMP_ACT_ALLOW",
     "architectures": ["SCMP_ARCH_X86_64"],
     "syscalls": [{"names": ["unshare", "mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

This module compiles that into BPF for this machine's architecture. It supports rules
by syscall name (no argument conditions). Docker's own default profile is an
*allowlist* of ~350 calls; :func:`docker_like_profile` is the smaller *blocklist* of
the calls Docker's profile refuses to a container without CAP_SYS_ADMIN: making
namespaces, mounting, loading kernel code, setting the clock, reading other processes'
memory, the kernel keyring.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from ..kernel.capabilities import prctl

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# Verdicts (<linux/seccomp.h>); the low 16 bits of SECCOMP_RET_ERRNO carry the errno.
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_LOG = 0x7ffc0000
RET_ALLOW = 0x7fff0000

# Classic BPF opcodes used here.
BPF_LD_W_ABS = 0x20    # A = 32-bit word at offset k of seccomp_data
BPF_JEQ_K = 0x15       # if A == k jump jt else jf
BPF_JGE_K = 0x35       # if A >= k jump jt else jf
BPF_RET_K = 0x06       # return k

OFFSET_NR, OFFSET_ARCH = 0, 4

#: Per architecture: its AUDIT_ARCH value (what the kernel puts at offset 4), the
#: spec's name for it, and syscall numbers for the names this module knows.
#: (x86_64 from <asm/unistd_64.h>; aarch64 uses the generic table <asm-generic/unistd.h>.)
ARCHES = {
    "x86_64": {
        "audit_arch": 0xC000003E, "spec_name": "SCMP_ARCH_X86_64",
        "numbers": {
            "acct": 163, "add_key": 248, "bpf": 321, "clock_adjtime": 305,
            "clock_settime": 227, "clone3": 435, "create_module": 174, "delete_module": 176,
            "finit_module": 313, "fsconfig": 431, "fsmount": 432, "fsopen": 430,
            "fspick": 433, "get_kernel_syms": 177, "init_module": 175, "ioperm": 173,
            "iopl": 172, "kcmp": 312, "kexec_file_load": 320, "kexec_load": 246,
            "keyctl": 250, "lookup_dcookie": 212, "mount": 165, "move_mount": 429,
            "name_to_handle_at": 303, "nfsservctl": 180, "open_by_handle_at": 304,
            "open_tree": 428, "perf_event_open": 298, "pivot_root": 155,
            "process_vm_readv": 310, "process_vm_writev": 311, "ptrace": 101,
            "query_module": 178, "quotactl": 179, "reboot": 169, "request_key": 249,
            "setns": 308, "settimeofday": 164, "swapoff": 168, "swapon": 167,
            "sysfs": 139, "_sysctl": 156, "umount2": 166, "unshare": 272, "uselib": 134,
            "userfaultfd": 323, "ustat": 136,
        },
        # x32 system calls are x86_64 numbers with this bit set: refuse them all, or a
        # blocked call could be made through its x32 twin.
        "x32_bit": 0x40000000,
    },
    "aarch64": {
        "audit_arch": 0xC00000B7, "spec_name": "SCMP_ARCH_AARCH64",
        "numbers": {
            "acct": 89, "add_key": 217, "bpf": 280, "clock_adjtime": 266,
            "clock_settime": 112, "clone3": 435, "delete_module": 106, "finit_module": 273,
            "fsconfig": 431, "fsmount": 432, "fsopen": 430, "fspick": 433,
            "init_module": 105, "kcmp": 272, "kexec_file_load": 294, "kexec_load": 104,
            "keyctl": 219, "lookup_dcookie": 18, "mount": 40, "move_mount": 429,
            "name_to_handle_at": 264, "nfsservctl": 42, "open_by_handle_at": 265,
            "open_tree": 428, "perf_event_open": 241, "pivot_root": 41,
            "process_vm_readv": 270, "process_vm_writev": 271, "ptrace": 117,
            "quotactl": 60, "reboot": 142, "request_key": 218, "setns": 268,
            "settimeofday": 170, "swapoff": 225, "swapon": 224, "umount2": 39,
            "unshare": 97, "userfaultfd": 282,
        },
        "x32_bit": None,
    },
}

#: What Docker's default profile refuses to a container without CAP_SYS_ADMIN (and
#: friends), by name. ``clone3`` fails with ENOSYS so that the C library falls back to
#: ``clone``, whose flags a filter can inspect (Docker's trick).
BLOCKED_SYSCALLS = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load",
    "kexec_load", "keyctl", "lookup_dcookie", "mount", "move_mount", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "reboot", "request_key", "setns", "settimeofday", "swapoff", "swapon", "sysfs",
    "_sysctl", "umount2", "unshare", "uselib", "userfaultfd", "ustat",
]


#: Calls Docker's profile gives back to a container granted a capability
#: (``--cap-add SYS_ADMIN`` may mount, ``SYS_PTRACE`` may run strace...).
ALLOWED_WITH_CAPABILITY = {
    "CAP_SYS_ADMIN": ["bpf", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
                      "mount", "move_mount", "name_to_handle_at", "open_tree",
                      "perf_event_open", "quotactl", "setns", "umount2", "unshare", "clone3"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "process_vm_readv", "process_vm_writev", "ptrace"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "clock_settime", "clock_adjtime"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}


def docker_like_profile(capabilities=()) -> dict:
    """A ``linux.seccomp`` section refusing :data:`BLOCKED_SYSCALLS` with EPERM (and
    ``clone3`` with ENOSYS) on this machine's architecture, except the calls that the
    given ``capabilities`` (the container's bounding set) give back, as in Docker."""
    arch = ARCHES.get(os.uname().machine)
    granted = {name for cap in capabilities for name in ALLOWED_WITH_CAPABILITY.get(cap, ())}
    names = [n for n in BLOCKED_SYSCALLS if arch and n in arch["numbers"] and n not in granted]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [arch["spec_name"]] if arch else [],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
        ] + ([] if "clone3" in granted else [
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]),
    }


def verdict(action: str, errno_ret: int | None = None) -> int:
    """The BPF return value for a spec action such as ``SCMP_ACT_ERRNO``."""
    if action == "SCMP_ACT_ERRNO":
        return RET_ERRNO | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    table = {"SCMP_ACT_ALLOW": RET_ALLOW, "SCMP_ACT_KILL": RET_KILL_THREAD,
             "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD, "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
             "SCMP_ACT_TRAP": RET_TRAP, "SCMP_ACT_LOG": RET_LOG}
    try:
        return table[action]
    except KeyError:
        raise ValueError(f"seccomp: unsupported action {action!r}") from None


def compile_filter(profile: dict, machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The spec's seccomp section as BPF instructions ``(code, jt, jf, k)``::

        A = arch;  if A != this arch: return EPERM   (a 32-bit call must not sneak past)
        A = nr;    [x86_64: if A >= x32 bit: return EPERM]
        if A == nr1: return verdict1
        ...
        return defaultAction

    The kernel runs it on every system call the process makes, top to bottom.
    """
    machine = machine or os.uname().machine
    arch = ARCHES.get(machine)
    if arch is None:
        raise ValueError(f"seccomp: architecture {machine} is not supported by this runtime")
    deny = RET_ERRNO | errno.EPERM
    program = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
               (BPF_JEQ_K, 1, 0, arch["audit_arch"]),
               (BPF_RET_K, 0, 0, deny),
               (BPF_LD_W_ABS, 0, 0, OFFSET_NR)]
    if arch["x32_bit"]:
        program += [(BPF_JGE_K, 0, 1, arch["x32_bit"]), (BPF_RET_K, 0, 0, deny)]
    for rule in profile.get("syscalls", []):
        if rule.get("args"):
            raise ValueError("seccomp: rules with argument conditions are not supported")
        ret = verdict(rule["action"], rule.get("errnoRet"))
        for name in rule.get("names", []):
            number = arch["numbers"].get(name)
            if number is None:
                raise ValueError(f"seccomp: system call {name!r} is unknown to this runtime "
                                 f"on {machine}")
            program += [(BPF_JEQ_K, 0, 1, number), (BPF_RET_K, 0, 0, ret)]
    program.append((BPF_RET_K, 0, 0, verdict(profile.get("defaultAction", "SCMP_ACT_ALLOW"))))
    return program


def install(profile: dict) -> None:
    """Compile and load the filter into the calling process (and all it will fork).

    The kernel only accepts a filter from a process that holds CAP_SYS_ADMIN or has set
    ``no_new_privs``: otherwise a filter could fool a set-uid program it then executes.
    """
    program = compile_filter(profile)
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.addressof(buffer))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
