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

This module compiles that into BPF for this machine's architecture: rules by name,
with argument conditions (``"args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 8}]``,
as podman's profile has for ``personality``); a name the architecture does not have
is skipped, as libseccomp does. Only the machine's native architecture is let through:
32-bit calls (``SCMP_ARCH_X86``) are refused whatever the profile says. Docker's own
default profile is an
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
from . import syscall_numbers

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
BPF_AND_K = 0x54       # A &= k
BPF_JEQ_K = 0x15       # if A == k jump jt else jf
BPF_JGT_K = 0x25       # if A > k jump jt else jf
BPF_JGE_K = 0x35       # if A >= k jump jt else jf
BPF_RET_K = 0x06       # return k

#: ``struct seccomp_data``: nr, arch, instruction pointer, then six 64-bit arguments,
#: each read as two 32-bit words (little-endian: the low word first).
OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16

#: Per architecture: its AUDIT_ARCH value (what the kernel puts at offset 4), the
#: spec's name for it, and its system call numbers (:mod:`.syscall_numbers`).
ARCHES = {
    "x86_64": {
        "audit_arch": 0xC000003E, "spec_name": "SCMP_ARCH_X86_64",
        "numbers": syscall_numbers.X86_64,
        # x32 system calls are x86_64 numbers with this bit set: refuse them all, or a
        # blocked call could be made through its x32 twin.
        "x32_bit": 0x40000000,
    },
    "aarch64": {
        "audit_arch": 0xC00000B7, "spec_name": "SCMP_ARCH_AARCH64",
        "numbers": syscall_numbers.AARCH64,
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
    if action == "SCMP_ACT_TRACE":
        # No tracer is attached to a container: the kernel fails a traced call with
        # ENOSYS then, so say that directly.
        action, errno_ret = "SCMP_ACT_ERRNO", errno.ENOSYS
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
        if A == nr2: [A = arg0 (high word); if A != ...: skip;  A = arg0 (low)...]
                     return verdict2;  A = nr
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
        ret = verdict(rule["action"], rule.get("errnoRet"))
        checks = _argument_checks(rule.get("args") or [])
        for name in rule.get("names", []):
            number = arch["numbers"].get(name)
            if number is None:
                continue  # not a call of this architecture (libseccomp skips it too)
            if not checks:
                program += [(BPF_JEQ_K, 0, 1, number), (BPF_RET_K, 0, 0, ret)]
                continue
            # the checks, the return, and the reload of A = nr that every failed
            # check jumps to
            block = _assemble(checks + [(BPF_RET_K, 0, 0, ret)])
            program.append((BPF_JEQ_K, 0, len(block), number))
            program += block
            program.append((BPF_LD_W_ABS, 0, 0, OFFSET_NR))
    default = verdict(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    program.append((BPF_RET_K, 0, 0, default))
    return program


#: Each comparison of a 64-bit argument with ``value`` as 32-bit steps. "ok" and
#: "fail" are labels: the next condition, or the end of the rule (the rule does not
#: apply); 0 is the next instruction. ``hi``/``lo`` are loads of the argument's words.
_COMPARISONS = {
    "SCMP_CMP_EQ": lambda v: [("hi",), (BPF_JEQ_K, 0, "fail", v >> 32), ("lo",),
                              (BPF_JEQ_K, "ok", "fail", v & 0xFFFFFFFF)],
    "SCMP_CMP_NE": lambda v: [("hi",), (BPF_JEQ_K, 0, "ok", v >> 32), ("lo",),
                              (BPF_JEQ_K, "fail", "ok", v & 0xFFFFFFFF)],
    "SCMP_CMP_GT": lambda v: [("hi",), (BPF_JGT_K, "ok", 0, v >> 32),
                              (BPF_JEQ_K, 0, "fail", v >> 32), ("lo",),
                              (BPF_JGT_K, "ok", "fail", v & 0xFFFFFFFF)],
    "SCMP_CMP_GE": lambda v: [("hi",), (BPF_JGT_K, "ok", 0, v >> 32),
                              (BPF_JEQ_K, 0, "fail", v >> 32), ("lo",),
                              (BPF_JGE_K, "ok", "fail", v & 0xFFFFFFFF)],
}


def _argument_checks(args) -> list:
    """The conditions of one rule (all must hold) as instructions with labels."""
    code = []
    for cond in args:
        index, op = int(cond["index"]), cond["op"]
        value = int(cond.get("value", 0)) & 0xFFFFFFFFFFFFFFFF
        if not 0 <= index < 6:
            raise ValueError(f"seccomp: argument index {index} out of range")
        offset = OFFSET_ARGS + 8 * index
        if op == "SCMP_CMP_MASKED_EQ":
            datum = int(cond.get("valueTwo", 0)) & 0xFFFFFFFFFFFFFFFF
            steps = [("hi",), (BPF_AND_K, 0, 0, value >> 32), (BPF_JEQ_K, 0, "fail", datum >> 32),
                     ("lo",), (BPF_AND_K, 0, 0, value & 0xFFFFFFFF),
                     (BPF_JEQ_K, "ok", "fail", datum & 0xFFFFFFFF)]
        elif op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
            # a < v is "not a >= v": the same steps, with the outcomes swapped
            steps = [tuple({"ok": "fail", "fail": "ok"}.get(x, x) for x in step)
                     for step in _COMPARISONS["SCMP_CMP_GE" if op == "SCMP_CMP_LT" else "SCMP_CMP_GT"](value)]
        elif op in _COMPARISONS:
            steps = _COMPARISONS[op](value)
        else:
            raise ValueError(f"seccomp: unsupported comparison {op!r}")
        for step in steps:
            if step == ("hi",):
                code.append((BPF_LD_W_ABS, 0, 0, offset + 4))
            elif step == ("lo",):
                code.append((BPF_LD_W_ABS, 0, 0, offset))
            else:
                code.append(step)
        code.append("ok")
    return code


def _assemble(code: list) -> list[tuple[int, int, int, int]]:
    """Resolve the labels into relative jumps (at most 255 ahead, as BPF allows): a
    condition's "ok" is the instruction after it, "fail" the one after the block."""
    instructions, pending_ok = [], []
    for item in code:
        if item == "ok":
            for index, field in pending_ok:
                instructions[index][field] = ("at", len(instructions))
            pending_ok = []
            continue
        insn = list(item)
        for field in (1, 2):
            if insn[field] == "ok":
                pending_ok.append((len(instructions), field))
        instructions.append(insn)
    end = len(instructions)
    program = []
    for i, (op, jt, jf, k) in enumerate(instructions):
        jumps = []
        for label in (jt, jf):
            if label == "fail":
                label = ("at", end)
            jumps.append(label[1] - i - 1 if isinstance(label, tuple) else label)
        if not all(0 <= j < 256 for j in jumps):
            raise ValueError("seccomp: a rule is too long to jump over")
        program.append((op, jumps[0], jumps[1], k))
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
