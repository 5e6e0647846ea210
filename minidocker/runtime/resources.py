"""``linux.resources`` of the spec -> the container's cgroup (memory, cpu, pids, devices).

The runtime makes one cgroup per container (``linux.cgroupsPath``, by default
``/minidocker/<id>``: absolute, from each hierarchy's root, as runc reads it; a relative
path runc would place below its own cgroup), writes the limits into it and puts the container's first process
there *before* it makes the cgroup namespace and forks PID 1: every process of the
container is born inside, and the new cgroup namespace is rooted at the container's
group, so ``cat /proc/self/cgroup`` inside shows ``/``.
"""

from __future__ import annotations

import os

from ..errors import InvalidInput, MinidockerError
from ..kernel import cgroups


def cgroup_path(spec: dict, container_id: str) -> str:
    """The container's cgroup relative to each hierarchy's root."""
    path = spec.get("linux", {}).get("cgroupsPath") or f"/minidocker/{container_id}"
    return path.strip("/")


def create_cgroup(spec: dict, container_id: str):
    """Make the container's cgroup and apply the spec's limits; returns the
    :class:`minidocker.kernel.cgroups.Cgroup`. On failure nothing is left behind."""
    path = cgroup_path(spec, container_id)
    if path.split("/")[0] != cgroups.PARENT or "/" not in path:
        # The machine's own cgroups are not ours to make or remove (see MACHINE.md).
        raise InvalidInput(f"linux.cgroupsPath {path!r}: must be below /{cgroups.PARENT}/")
    cg = cgroups.open_cgroup(path)
    if cg.exists() and cg.pids():
        raise MinidockerError(f"cgroup {cg.relpath} is in use by another container")
    cg.create()
    try:
        apply_resources(cg, spec.get("linux", {}).get("resources", {}))
    except BaseException:
        cg.remove()
        raise
    return cg


def apply_resources(cg, resources: dict) -> None:
    """Write the memory, cpu, pids and device limits into the cgroup."""
    memory = (resources.get("memory") or {}).get("limit")
    if memory:
        # OCI's memory.swap is RAM plus swap, as --memory-swap (absent: no swap at all).
        swap = (resources.get("memory") or {}).get("swap")
        cg.set_memory(int(memory), swap=int(swap) if swap else None)
    cpu = resources.get("cpu") or {}
    if cpu.get("quota") and cpu.get("quota") > 0:
        cg.set_cpus(cpu["quota"] / (cpu.get("period") or 100_000))
    if cpu.get("shares") and hasattr(cg, "set_cpu_shares"):
        cg.set_cpu_shares(int(cpu["shares"]))
    pids = (resources.get("pids") or {}).get("limit")
    if pids and pids > 0:
        cg.set_pids(int(pids))
    if "devices" in resources:
        apply_device_rules(cg, resources["devices"])


def device_rule_text(rule: dict) -> str:
    """A spec device rule as the v1 devices cgroup writes it: ``"c 1:3 rwm"``; a rule
    without a type means every device: ``"a"``."""
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    major = "*" if rule.get("major") is None or rule.get("major") < 0 else rule["major"]
    minor = "*" if rule.get("minor") is None or rule.get("minor") < 0 else rule["minor"]
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def apply_device_rules(cg, rules) -> None:
    """The device allowlist, cgroup v1 way: write each rule to ``devices.allow`` or
    ``devices.deny`` in order. ``deny a`` first clears every exception and denies
    everything; the allows after it open up the standard devices again.

    Opening a device node checks this list, whoever made the node and whatever its
    permissions: that is what keeps root in a container away from the host's disks.
    (cgroup v2 has no such files; there runc attaches an eBPF program instead, which
    this runtime does not do yet.)
    """
    directory = cg.path("devices") if getattr(cg, "version", 1) == 1 else None
    if not directory or not os.path.isdir(directory):
        return
    for rule in rules or ():
        name = "devices.allow" if rule.get("allow") else "devices.deny"
        text = device_rule_text(rule)
        try:
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
        except OSError as e:
            raise MinidockerError(f"cannot write {text!r} to {directory}/{name}: {e.strerror}") from None
