"""seccomp: a filter on which system calls the container may make at all.

Capabilities decide what root *may do* with a system call; seccomp (secure computing)
can refuse the call itself, before the kernel looks at anything else. The filter is a
tiny program for the kernel's classic BPF machine: for every system call it reads the
``struct seccomp_data`` (the call's number at offset 0, the CPU architecture at offset
4, then six 64-bit arguments from offset 16) and returns a verdict: allow, fail with an
errno, or kill. It is installed with ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER,
&program)``, is inherited by every child and kept across ``execve``, and can never be
removed.

The spec describes it in ``linux.seccomp`` (the format libseccomp and runc read)::

    {"defaultAction": "SCMP_ACT_ALLOW",
     "architectures": ["SCMP_ARCH_X86_64"],
     "syscalls": [{"names": ["unshare", "mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                  {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 1, "value": 2048, "valueTwo": 2048,
                             "op": "SCMP_CMP_MASKED_EQ"}]}]}

This module checks that section (:func:`check_profile`, each error naming its field)
and compiles it into BPF (:func:`compile_filter`): rules by system call name, with
argument conditions, for this machine's ABI and the ones the profile lists beside it
(x86 and x32 next to x86_64, arm next to aarch64). Names come from libseccomp's tables
(:mod:`.syscall_table`), so a name means the call runc would filter.

Docker's own default profile is an *allowlist* of ~350 calls; :func:`docker_like_profile`
is the smaller *blocklist* of the calls Docker's profile refuses to a container without
CAP_SYS_ADMIN: making namespaces, mounting, loading kernel code, setting the clock,
reading other processes' memory, the kernel keyring.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
import sys

from ..kernel.capabilities import prctl
from .syscall_table import TABLES

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1   # seccomp(2)'s operation, for a filter with flags

# Verdicts (<linux/seccomp.h>); the low 16 bits of ERRNO and TRACE carry a number.
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7ff00000
RET_LOG = 0x7ffc0000
RET_ALLOW = 0x7fff0000

#: The spec's actions and the verdict each one returns. SCMP_ACT_KILL is libseccomp's
#: old name for killing the thread. (SCMP_ACT_NOTIFY, which hands the call to a
#: supervisor process over a file descriptor, needs an agent this runtime has not.)
ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS, "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO, "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_ALLOW": RET_ALLOW, "SCMP_ACT_LOG": RET_LOG,
}

#: How an argument is compared with ``value`` (unsigned, 64 bits; MASKED_EQ is
#: ``arg & value == valueTwo``).
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")

#: Every architecture name the spec (libseccomp) knows.
SPEC_ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
               "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
               "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
               "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
               "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64")

#: seccomp(2) flags a profile may ask for.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}

#: The highest errno the kernel passes back (MAX_ERRNO); ERRNO's 16 bits hold it.
MAX_ERRNO = 4095

#: x32 system calls come with x86_64's AUDIT_ARCH and this bit set in their number.
X32_SYSCALL_BIT = 0x40000000

#: Per ABI: the AUDIT_ARCH value the kernel puts at offset 4 of seccomp_data, and the
#: width of its arguments (a 32-bit ABI's arguments are compared on their low word,
#: as libseccomp does).
ABIS = {
    "SCMP_ARCH_X86_64": {"audit_arch": 0xC000003E, "bits": 64},
    "SCMP_ARCH_X32": {"audit_arch": 0xC000003E, "bits": 32},
    "SCMP_ARCH_X86": {"audit_arch": 0x40000003, "bits": 32},
    "SCMP_ARCH_AARCH64": {"audit_arch": 0xC00000B7, "bits": 64},
    "SCMP_ARCH_ARM": {"audit_arch": 0x40000028, "bits": 32},
}

#: ``uname -m`` -> the native ABI and the ones its CPU also runs.
NATIVE = {"x86_64": ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
          "aarch64": ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",))}

#: Kept for the tools and older callers: the native ABIs by machine, with their numbers.
ARCHES = {machine: {"audit_arch": ABIS[abi]["audit_arch"], "spec_name": abi,
                    "numbers": TABLES[abi],
                    "x32_bit": X32_SYSCALL_BIT if abi == "SCMP_ARCH_X86_64" else None}
          for machine, (abi, _subs) in NATIVE.items()}

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


class ProfileError(ValueError):
    """A ``linux.seccomp`` section the runtime cannot compile; the message starts with
    the field that is wrong (``syscalls[2].args[0].op: ...``)."""


def verdict(action: str, errno_ret: int | None = None) -> int:
    """The BPF return value for a spec action such as ``SCMP_ACT_ERRNO``: ERRNO and
    TRACE carry ``errno_ret`` (EPERM when absent, as runc does)."""
    try:
        base = ACTIONS[action]
    except KeyError:
        raise ProfileError(f"unknown action {_q(action)}") from None
    if base in (RET_ERRNO, RET_TRACE):
        return base | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


def check_profile(section: dict) -> None:
    """Refuse a ``linux.seccomp`` section that cannot mean what it says, naming the
    field: an unknown action, operator, architecture or flag, an argument index past
    the sixth, a value that is not an unsigned 64-bit number, an empty system call name.

    A *name* the tables do not know is not an error: runc (through libseccomp) takes it
    as a call this kernel does not have and skips it, and so does :func:`compile_filter`.
    """
    if not isinstance(section, dict):
        raise ProfileError("the profile must be a JSON object")
    action = section.get("defaultAction")
    if not action:
        raise ProfileError("defaultAction: missing")
    _check_action(action, "defaultAction")
    _check_errno(section.get("defaultErrnoRet"), "defaultErrnoRet")
    for i, arch in enumerate(_list(section.get("architectures"), "architectures")):
        if arch not in SPEC_ARCHES:
            raise ProfileError(f"architectures[{i}]: unknown architecture {_q(arch)}")
    for i, flag in enumerate(_list(section.get("flags"), "flags")):
        if flag not in FLAGS:
            raise ProfileError(f"flags[{i}]: unknown flag {_q(flag)}")
    for i, rule in enumerate(_list(section.get("syscalls"), "syscalls")):
        check_rule(rule, f"syscalls[{i}]")


def check_rule(rule: dict, where: str) -> None:
    """One entry of ``syscalls``: names, action, errnoRet, args."""
    if not isinstance(rule, dict):
        raise ProfileError(f"{where}: must be an object")
    for j, name in enumerate(_list(rule.get("names"), f"{where}.names")):
        if not isinstance(name, str):
            raise ProfileError(f"{where}.names[{j}]: must be a string")
        if not name:
            raise ProfileError(f"{where}.names[{j}]: empty string is not a valid syscall")
    if "action" not in rule:
        raise ProfileError(f"{where}.action: missing")
    _check_action(rule["action"], f"{where}.action")
    _check_errno(rule.get("errnoRet"), f"{where}.errnoRet")
    for k, arg in enumerate(_list(rule.get("args"), f"{where}.args")):
        at = f"{where}.args[{k}]"
        if not isinstance(arg, dict):
            raise ProfileError(f"{at}: must be an object")
        index = arg.get("index")
        if not _is_uint(index) or index > 5:
            raise ProfileError(f"{at}.index: {_q(index)} is not an argument index (0 to 5)")
        for key in ("value", "valueTwo"):
            if key in arg and not (_is_uint(arg[key]) and arg[key] < 1 << 64):
                raise ProfileError(f"{at}.{key}: {_q(arg[key])} is not an unsigned 64-bit number")
        if "value" not in arg:
            raise ProfileError(f"{at}.value: missing")
        if arg.get("op") not in OPERATORS:
            raise ProfileError(f"{at}.op: unknown operator {_q(arg.get('op'))} "
                               f"(one of {', '.join(OPERATORS)})")


def _check_action(action, where: str) -> None:
    if action == "SCMP_ACT_NOTIFY":
        raise ProfileError(f"{where}: SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath), "
                           "which this runtime does not support")
    if action not in ACTIONS:
        raise ProfileError(f"{where}: unknown action {_q(action)}")


def _check_errno(value, where: str) -> None:
    if value is not None and not (_is_uint(value) and value <= MAX_ERRNO):
        raise ProfileError(f"{where}: {_q(value)} is not an errno (0 to {MAX_ERRNO})")


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProfileError(f"{where}: must be a list")
    return value


def _q(value) -> str:
    """A value as the profile wrote it (JSON), for messages."""
    return json.dumps(value)


def _is_uint(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --------------------------------------------------------------------------- the compiler
# Classic BPF opcodes used here.
BPF_LD_W_ABS = 0x20    # A = 32-bit word at offset k of seccomp_data
BPF_JEQ_K = 0x15       # if A == k jump jt else jf
BPF_JGT_K = 0x25       # if A > k (unsigned) jump jt else jf
BPF_JGE_K = 0x35       # if A >= k (unsigned) jump jt else jf
BPF_JA = 0x05          # jump k forward, whatever A is (k is 32 bits: reaches anywhere)
BPF_AND_K = 0x54       # A &= k
BPF_RET_K = 0x06       # return k

OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16


class _Label:
    """A place in the program, for jumps to point at before it is known."""


def _words(value: int) -> tuple[int, int]:
    """A 64-bit value as (low, high) 32-bit words."""
    return value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF


def _arg_offsets(index: int) -> tuple[int, int]:
    """Where the low and high words of argument ``index`` sit in seccomp_data."""
    base = OFFSET_ARGS + 8 * index
    return (base, base + 4) if sys.byteorder == "little" else (base + 4, base)


def _compare(cond: dict, bits: int, fail: _Label) -> list:
    """Instructions that fall through when the argument condition holds and jump to
    ``fail`` when it does not. BPF's registers are 32 bits wide, so a 64-bit comparison
    is done on the high words first, then, when they are equal, on the low words."""
    op, value, two = cond["op"], cond["value"], cond.get("valueTwo", 0)
    lo_at, hi_at = _arg_offsets(cond["index"])
    (vlo, vhi), (tlo, thi) = _words(value), _words(two)
    if bits == 32:
        # A 32-bit ABI: only the low word is the argument.
        return _compare_words(op, [(lo_at, vlo, tlo)], fail)
    return _compare_words(op, [(hi_at, vhi, thi), (lo_at, vlo, tlo)], fail)


def _compare_words(op: str, words: list, fail: _Label) -> list:
    """``words`` is [(offset, value word, valueTwo word)], most significant first."""
    ok = _Label()
    code = []
    last = len(words) - 1
    for i, (at, v, t) in enumerate(words):
        code.append((BPF_LD_W_ABS, 0, 0, at))
        final = i == last
        if op == "SCMP_CMP_EQ":
            code.append((BPF_JEQ_K, 0, fail, v))
        elif op == "SCMP_CMP_MASKED_EQ":
            code += [(BPF_AND_K, 0, 0, v), (BPF_JEQ_K, 0, fail, t)]
        elif op == "SCMP_CMP_NE":
            # differs in any word: it holds
            code.append((BPF_JEQ_K, fail, 0, v) if final else (BPF_JEQ_K, 0, ok, v))
        elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
            if final:
                code.append((BPF_JGT_K if op == "SCMP_CMP_GT" else BPF_JGE_K, 0, fail, v))
            else:  # higher word greater: holds; smaller: fails; equal: look further
                code += [(BPF_JGT_K, ok, 0, v), (BPF_JEQ_K, 0, fail, v)]
        elif op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
            if final:
                code.append((BPF_JGT_K if op == "SCMP_CMP_LE" else BPF_JGE_K, fail, 0, v))
            else:
                code += [(BPF_JGT_K, fail, 0, v), (BPF_JEQ_K, 0, ok, v)]
        else:
            raise ProfileError(f"unknown operator {op!r}")
    code.append(ok)
    return code


def _section(abi: str, rules: list, default: int, program: list) -> None:
    """The rules for one ABI; A holds the system call number on entry."""
    numbers, bits = TABLES[abi], ABIS[abi]["bits"]
    for names, ret, conditions in rules:
        for name in names:
            number = numbers.get(name)
            if number is None:
                continue   # not a call of this ABI (libseccomp and runc skip it too)
            if not conditions:
                program += [(BPF_JEQ_K, 0, 1, number), (BPF_RET_K, 0, 0, ret)]
                continue
            other, fail = _Label(), _Label()
            program.append((BPF_JEQ_K, 0, other, number))
            for cond in conditions:          # every condition must hold (AND)
                program += _compare(cond, bits, fail)
            program += [(BPF_RET_K, 0, 0, ret), fail, (BPF_LD_W_ABS, 0, 0, OFFSET_NR), other]
    program.append((BPF_RET_K, 0, 0, default))


def _assemble(program: list) -> list[tuple[int, int, int, int]]:
    """Resolve labels into relative jumps (``jt``/``jf`` reach 255 instructions ahead,
    ``ja`` anywhere) and drop them."""
    where, insns = {}, []
    for item in program:
        if isinstance(item, _Label):
            where[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for i, (code, jt, jf, k) in enumerate(insns):
        def rel(target):
            offset = where[target] - (i + 1) if isinstance(target, _Label) else target
            if code != BPF_JA and not 0 <= offset <= 255:
                raise ProfileError("a rule is too long to compile (a jump past 255 instructions)")
            return offset
        if code == BPF_JA:
            k = rel(k)
        out.append((code, rel(jt), rel(jf), k))
    if len(out) > 4096:
        raise ProfileError(f"the filter has {len(out)} instructions; the kernel takes 4096 at most")
    return out


def compile_filter(profile: dict, machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The spec's seccomp section as BPF instructions ``(code, jt, jf, k)``::

        A = arch;  if A != native arch: jump to the other ABIs' dispatch
        A = nr;    [x86_64: if A has the x32 bit: x32's rules, or refuse]
        if A == nr1: return verdict1                        a rule without conditions
        if A == nr2: { A = arg...; if not (cond): skip }    a rule with conditions
                     return verdict2
        ...
        return defaultAction
        (each other ABI the profile lists: its own numbers, the same rules)
        return EPERM                                        an ABI the profile left out

    The kernel runs it on every system call the process makes, top to bottom. A call
    through an ABI the profile does not list fails with EPERM (libseccomp would kill
    the thread: an error says more to a learner, and lets nothing more through).
    A rule whose action is the default's is left out, as runc leaves it out.
    """
    check_profile(profile)
    machine = machine or os.uname().machine
    if machine not in NATIVE:
        raise ProfileError(f"architecture {machine} is not supported by this runtime")
    native, subs = NATIVE[machine]
    listed = set(profile.get("architectures") or ())
    extra = [abi for abi in subs if abi in listed]
    default_errno = profile.get("defaultErrnoRet")
    default = verdict(profile["defaultAction"], default_errno)
    rules = []
    for rule in profile.get("syscalls") or ():
        ret = verdict(rule["action"], rule.get("errnoRet"))
        if ret != default:
            rules.append((rule.get("names") or [], ret, rule.get("args") or []))
    deny = RET_ERRNO | errno.EPERM
    others, x32 = _Label(), _Label()
    program = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
               (BPF_JEQ_K, 1, 0, ABIS[native]["audit_arch"]),
               (BPF_JA, 0, 0, others),
               (BPF_LD_W_ABS, 0, 0, OFFSET_NR)]
    if native == "SCMP_ARCH_X86_64":
        # x32 calls arrive as x86_64 ones with bit 30 set in the number: without this
        # a blocked call could be made through its x32 twin.
        program += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
                    (BPF_JA, 0, 0, x32) if "SCMP_ARCH_X32" in extra else (BPF_RET_K, 0, 0, deny)]
    _section(native, rules, default, program)
    sections = []
    program.append(others)
    for abi in extra:
        if abi == "SCMP_ARCH_X32":
            continue   # reached from the x86_64 section
        start = _Label()
        sections.append((abi, start))
        program += [(BPF_JEQ_K, 0, 1, ABIS[abi]["audit_arch"]), (BPF_JA, 0, 0, start)]
    program.append((BPF_RET_K, 0, 0, deny))
    if "SCMP_ARCH_X32" in extra:
        program.append(x32)
        _section("SCMP_ARCH_X32", rules, default, program)
    for abi, start in sections:
        program += [start, (BPF_LD_W_ABS, 0, 0, OFFSET_NR)]
        _section(abi, rules, default, program)
    return _assemble(program)


def install(profile: dict) -> None:
    """Compile and load the filter into the calling process (and all it will fork).

    The kernel only accepts a filter from a process that holds CAP_SYS_ADMIN or has set
    ``no_new_privs``: otherwise a filter could fool a set-uid program it then executes.
    A profile with ``flags`` is loaded with seccomp(2), the call that takes them.
    """
    program = compile_filter(profile)
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.addressof(buffer))
    flags = 0
    for name in profile.get("flags") or ():
        flags |= FLAGS[name]
    if not flags:
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
        return
    libc = ctypes.CDLL(None, use_errno=True)
    number = TABLES[NATIVE[os.uname().machine][0]]["seccomp"]
    if libc.syscall(ctypes.c_long(number), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                    ctypes.c_uint(flags), ctypes.c_void_p(ctypes.addressof(fprog))) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER, {flags:#x}): {os.strerror(err)}")
