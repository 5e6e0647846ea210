"""``--security-opt seccomp=PROFILE.json``: Docker's profile format, read and checked at
create, turned into the spec's ``linux.seccomp`` at start.

Docker's format is the spec's, plus what lets one file serve every machine and every
set of capabilities (its own default profile is written this way)::

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
     "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                  "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
     "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
         "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"]}}]}

* ``archMap``: the architectures the filter covers, chosen by the machine's own (only
  the entry for this machine's architecture is used, with its sub-architectures);
  ``architectures`` lists them directly instead (not both);
* ``includes`` / ``excludes`` on a rule: it applies only if the container has *all*
  the ``caps`` (in its bounding set), the machine is one of ``arches`` (Go's names:
  ``amd64``, ``arm64``...) and the kernel is at least ``minKernel``; ``excludes``
  drops the rule if *any* holds;
* ``name`` (one call) is the old spelling of ``names``.

As the docker CLI does, the file is read once, at create, and its text kept in the
container's ``HostConfig.SecurityOpt`` (``seccomp={...}``): the container does not change
if the file does. Unlike Docker, which finds a bad profile only when the container
starts, every rule is checked here at once, and the error names the field.
"""

from __future__ import annotations

import json
import os

from ..errors import InvalidInput
from ..runtime import seccomp

#: The fields of each object in Docker's format (Go ignores others; a typo such as
#: "syscall" for "syscalls" would then silently mean *no rules*: refused here).
TOP_FIELDS = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls",
              "flags", "listenerPath", "listenerMetadata"}
RULE_FIELDS = {"name", "names", "action", "errnoRet", "args", "comment", "includes", "excludes"}
ARG_FIELDS = {"index", "value", "valueTwo", "op"}
FILTER_FIELDS = {"caps", "arches", "minKernel"}
ARCHMAP_FIELDS = {"architecture", "subArchitectures"}

#: ``uname -m`` -> Go's name for it, which ``includes.arches`` / ``excludes.arches`` use.
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def read_profile(path: str) -> str:
    """The profile file's JSON, checked and compacted (what goes into the record).
    Every error is one line: the file, and the field (or the line) that is wrong."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror.lower() if isinstance(e, OSError) and e.strerror else str(e)
        raise InvalidInput(f"opening seccomp profile ({path}) failed: open {path}: {reason}") from None
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(f"seccomp profile {path}: not JSON: line {e.lineno} column {e.colno}: "
                           f"{e.msg}") from None
    try:
        check(profile)
    except seccomp.ProfileError as e:
        raise InvalidInput(f"seccomp profile {path}: {e}") from None
    return json.dumps(profile, separators=(",", ":"))


def check(profile) -> None:
    """Docker's format, field by field (see the module's docstring); then the rules
    themselves as the runtime will compile them (:func:`minidocker.runtime.seccomp.check_rule`)."""
    Error = seccomp.ProfileError
    if not isinstance(profile, dict):
        raise Error("the profile must be a JSON object")
    _known(profile, TOP_FIELDS, "")
    if profile.get("architectures") and profile.get("archMap"):
        raise Error("'architectures' and 'archMap' were specified in the seccomp profile, "
                    "use either 'architectures' or 'archMap'")
    if profile.get("listenerPath"):
        raise Error("listenerPath: a seccomp agent (SCMP_ACT_NOTIFY) is not supported")
    if not isinstance(profile.get("syscalls", []), list):
        raise Error("syscalls: must be a list")
    for i, entry in enumerate(profile.get("archMap") or ()):
        where = f"archMap[{i}]"
        if not isinstance(entry, dict):
            raise Error(f"{where}: must be an object")
        _known(entry, ARCHMAP_FIELDS, where)
        for j, arch in enumerate([entry.get("architecture"), *(entry.get("subArchitectures") or ())]):
            if arch not in seccomp.SPEC_ARCHES:
                field = "architecture" if j == 0 else f"subArchitectures[{j - 1}]"
                raise Error(f"{where}.{field}: unknown architecture {json.dumps(arch)}")
    for i, rule in enumerate(profile.get("syscalls") or ()):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise Error(f"{where}: must be an object")
        _known(rule, RULE_FIELDS, where)
        if rule.get("name") and rule.get("names"):
            raise Error(f"{where}: 'name' and 'names' were specified in the seccomp profile, "
                        "use either 'name' or 'names'")
        if "name" in rule and not isinstance(rule["name"], str):
            raise Error(f"{where}.name: must be a string")
        for k, arg in enumerate(rule.get("args") or ()):
            if isinstance(arg, dict):
                _known(arg, ARG_FIELDS, f"{where}.args[{k}]")
        for key in ("includes", "excludes"):
            cond = rule.get(key)
            if cond is None:
                continue
            if not isinstance(cond, dict):
                raise Error(f"{where}.{key}: must be an object")
            _known(cond, FILTER_FIELDS, f"{where}.{key}")
            for field in ("caps", "arches"):
                if not isinstance(cond.get(field, []), list):
                    raise Error(f"{where}.{key}.{field}: must be a list")
            if cond.get("minKernel") and _kernel_version(cond["minKernel"]) is None:
                raise Error(f"{where}.{key}.minKernel: {json.dumps(cond['minKernel'])} is not a kernel "
                            "version (like 4.8)")
        seccomp.check_rule(_spec_rule(rule), where)
    spec = {k: v for k, v in profile.items() if k in ("defaultAction", "defaultErrnoRet",
                                                      "architectures", "flags")}
    if spec.get("defaultAction") or profile.get("syscalls"):
        seccomp.check_profile({**spec, "syscalls": []})


def _known(obj: dict, fields: set, where: str) -> None:
    for key in obj:
        if key not in fields:
            at = f"{where}." if where else ""
            raise seccomp.ProfileError(f"{at}{key}: unknown field (known: {', '.join(sorted(fields))})")


def _spec_rule(rule: dict) -> dict:
    """A Docker rule as the spec's ``linux.seccomp.syscalls`` entry."""
    names = [rule["name"]] if rule.get("name") else list(rule.get("names") or [])
    out = {"names": names, "action": rule.get("action")}
    if "action" not in rule:
        del out["action"]
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    if rule.get("args"):
        out["args"] = [dict(arg, valueTwo=arg.get("valueTwo", 0)) if isinstance(arg, dict) else arg
                       for arg in rule["args"]]
    return out


def _kernel_version(text) -> tuple[int, ...] | None:
    """``"4.8"`` or ``"5.15.0-91-generic"`` -> (4, 8) / (5, 15, 0)."""
    parts = []
    for piece in str(text).split("-", 1)[0].split("."):
        if not piece.isdigit():
            return None if not parts else tuple(parts)
        parts.append(int(piece))
    return tuple(parts) if parts else None


def to_spec(text: str, capabilities, machine: str | None = None,
            kernel: str | None = None) -> dict | None:
    """The kept profile as ``linux.seccomp`` for a container with ``capabilities`` (its
    bounding set), on ``machine`` running ``kernel`` (this one by default): the rules
    that apply kept, the architectures chosen. None when the profile has neither a
    default action nor rules (Docker then runs the container without a filter)."""
    profile = json.loads(text)
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    machine = machine or os.uname().machine
    running = _kernel_version(kernel or os.uname().release) or (0,)
    go_arch = GO_ARCH.get(machine, machine)
    caps = set(capabilities)
    section = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        section["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or ())
    native = seccomp.NATIVE.get(machine, (None,))[0]
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == native:
            arches += [entry["architecture"], *(entry.get("subArchitectures") or ())]
            break
    if arches:
        section["architectures"] = arches
    if profile.get("flags"):
        section["flags"] = list(profile["flags"])
    rules = []
    for rule in profile.get("syscalls") or ():
        if _applies(rule, caps, go_arch, running):
            rules.append(_spec_rule(rule))
    section["syscalls"] = rules
    return section


def _applies(rule: dict, caps: set, go_arch: str, kernel: tuple) -> bool:
    """Docker's ``includes``/``excludes``: all of ``includes`` must hold, none of
    ``excludes``."""
    exc, inc = rule.get("excludes") or {}, rule.get("includes") or {}
    if go_arch in (exc.get("arches") or ()):
        return False
    if any(cap in caps for cap in exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and kernel >= _kernel_version(exc["minKernel"]):
        return False
    if inc.get("arches") and go_arch not in inc["arches"]:
        return False
    if any(cap not in caps for cap in inc.get("caps") or ()):
        return False
    if inc.get("minKernel") and kernel < _kernel_version(inc["minKernel"]):
        return False
    return True
