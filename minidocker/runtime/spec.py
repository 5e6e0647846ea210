"""The OCI runtime spec's ``config.json``: a whole container described in one JSON file.

An OCI *bundle* is a directory holding ``config.json`` and a root filesystem
(``root.path``, usually ``rootfs``). Everything the runtime does is written in the
config: the command (``process``), which namespaces to make (``linux.namespaces``),
what to mount (``mounts``), which paths to hide (``linux.maskedPaths``), the cgroup
limits (``linux.resources``). Open one and you see exactly what a container is.

:func:`default_spec` builds the config Docker would give ``docker run`` (moby's
``oci.DefaultLinuxSpec`` plus what the daemon adds), so that a learner can diff ours
against ``runc spec`` or a real Docker container's. :func:`load_spec` reads one back
and checks the parts the runtime relies on, so bad input gets one clear error before
anything is created.
"""

from __future__ import annotations

import json
import os

from ..errors import InvalidInput
from ..kernel.capabilities import CAP_NAMES, CAP_NUMBERS, DOCKER_DEFAULT_CAPS
from ..paths import write_json
from .seccomp import docker_like_profile

OCI_VERSION = "1.0.2-dev"

#: Every capability this runtime knows by name (``--privileged``, ``--cap-add ALL``).
ALL_CAPABILITIES = list(CAP_NAMES)

#: Docker's PATH when the image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: OCI namespace type -> the kernel's name for it (``/proc/PID/ns/<name>``).
NAMESPACE_KINDS = {"mount": "mnt", "network": "net", "uts": "uts", "pid": "pid",
                   "ipc": "ipc", "cgroup": "cgroup", "user": "user"}

#: Docker's mounts for every container (moby ``oci/defaults.go``). /dev is a small
#: tmpfs that the runtime fills with a handful of device nodes; /dev/pts is a *new
#: instance* of devpts, so the container sees only its own terminals.
DEFAULT_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
]

#: Paths under /proc and /sys that leak host information or let root poke the kernel.
#: Docker hides them: a file gets /dev/null bound over it, a directory an empty
#: read-only tmpfs.
DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]

#: Kernel knobs a container may read but not write.
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"]


def _device_rule(allow, kind=None, major=None, minor=None, access="rwm"):
    rule = {"allow": allow, "access": access}
    if kind:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


#: The device cgroup allowlist of a Docker container: deny everything, then allow
#: creating any node (``m``) but reading/writing only the standard devices. So root
#: in a container can ``mknod /dev/sda b 8 0`` yet cannot open it. Moby's default list
#: followed by the one runc appends (libcontainer ``specconv.AllowedDevices``).
DEFAULT_DEVICE_RULES = [
    _device_rule(False),
    _device_rule(True, "c", 1, 5),            # /dev/zero
    _device_rule(True, "c", 1, 3),            # /dev/null
    _device_rule(True, "c", 1, 9),            # /dev/urandom
    _device_rule(True, "c", 1, 8),            # /dev/random
    _device_rule(True, "c", 5, 0),            # /dev/tty
    _device_rule(True, "c", 5, 1),            # /dev/console
    _device_rule(False, "c", 10, 229),        # /dev/fuse
    _device_rule(True, "c", None, None, "m"),  # mknod of any character device
    _device_rule(True, "b", None, None, "m"),  # mknod of any block device
    _device_rule(True, "c", 1, 7),            # /dev/full
    _device_rule(True, "c", 136, None),       # /dev/pts/*
    _device_rule(True, "c", 5, 2),            # /dev/ptmx
    _device_rule(True, "c", 10, 200),         # /dev/net/tun (runc 1.1, Debian 12's)
]

#: The device nodes every container's /dev gets (runc's defaults, as in Docker).
DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
]

CPU_PERIOD_US = 100_000  # Docker's --cpus: quota = cpus * period, with a 100 ms period


def default_spec(args, env=None, cwd="/", uid=0, gid=0, hostname=None, terminal=False, *,
                 additional_gids=(), rootfs="rootfs", readonly_rootfs=False,
                 memory=None, cpus=None, pids_limit=None, cgroups_path=None,
                 memory_swap=None, cpu_shares=None,
                 capabilities=None, no_new_privileges=False, namespaces=None,
                 mounts=(), privileged=False, oom_score_adj=None, rlimits=None,
                 seccomp=False) -> dict:
    """The OCI ``config.json`` that ``docker run`` would produce, as a dict.

    ``args`` is the command (entrypoint + cmd already merged); ``env`` a list of
    ``KEY=VALUE`` (``PATH`` is added when missing, as Docker does); ``memory`` in bytes,
    ``cpus`` a float (``--cpus 0.5``), ``pids_limit`` an int; ``memory_swap`` is memory
    *plus* swap in bytes (-1: unlimited swap; None: no swap past ``memory``) and
    ``cpu_shares`` the relative weight (``--cpu-shares``). ``capabilities`` replaces
    Docker's 14 defaults (``--cap-add``/``--cap-drop`` are computed by the caller).
    ``namespaces`` is a list of OCI entries (``{"type": "network", "path": ...}``) to
    replace the default new mount/network/uts/pid/ipc/cgroup namespaces: leave
    ``network`` out for ``--network host``, give it a ``path`` for ``container:X``.
    ``mounts`` are appended to Docker's default mounts (bind mounts of
    /etc/hostname, /etc/hosts, /etc/resolv.conf, volumes). ``seccomp=True`` adds a
    system call filter refusing what Docker's default profile refuses to an
    unprivileged container (:func:`minidocker.runtime.seccomp.docker_like_profile`);
    a dict is a ``linux.seccomp`` section to use as it is.
    """
    if not args:
        raise InvalidInput("no command specified")
    env = list(env or [])
    if not any(item.startswith("PATH=") for item in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if terminal and not any(item.startswith("TERM=") for item in env):
        env.append("TERM=xterm")  # Docker sets TERM for -t
    caps = list(capabilities if capabilities is not None else DOCKER_DEFAULT_CAPS)
    if privileged:
        caps = list(ALL_CAPABILITIES)
    user = {"uid": int(uid), "gid": int(gid)}
    if additional_gids:
        user["additionalGids"] = [int(g) for g in additional_gids]
    process = {
        "terminal": bool(terminal),
        "user": user,
        "args": list(args),
        "env": env,
        "cwd": cwd or "/",
        # Since Docker 23 (CVE-2022-24769) the inheritable set is empty.
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": bool(no_new_privileges),
    }
    if oom_score_adj is not None:
        process["oomScoreAdj"] = int(oom_score_adj)
    if rlimits:
        process["rlimits"] = list(rlimits)
    resources = {"devices": [{"allow": True, "access": "rwm"}] if privileged
                 else [dict(rule) for rule in DEFAULT_DEVICE_RULES]}
    if memory:
        resources["memory"] = {"limit": int(memory)}
        if memory_swap:
            resources["memory"]["swap"] = int(memory_swap)
    if cpus:
        resources["cpu"] = {"quota": int(round(float(cpus) * CPU_PERIOD_US)),
                            "period": CPU_PERIOD_US}
    if cpu_shares:
        resources.setdefault("cpu", {})["shares"] = int(cpu_shares)
    if pids_limit:
        resources["pids"] = {"limit": int(pids_limit)}
    linux = {
        "resources": resources,
        "namespaces": list(namespaces) if namespaces is not None else
        [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc", "cgroup")],
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    if isinstance(seccomp, dict) and not privileged:
        linux["seccomp"] = seccomp           # a profile already made for these capabilities
    elif seccomp and not privileged:
        linux["seccomp"] = docker_like_profile(caps)
    if not privileged:
        linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS)
        linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    spec = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": bool(readonly_rootfs)},
        "mounts": [dict(m, options=list(m["options"])) for m in DEFAULT_MOUNTS] + list(mounts),
        "linux": linux,
    }
    if privileged:
        # --privileged: /sys and the cgroup fs are writable, every device is allowed.
        for m in spec["mounts"]:
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    if hostname:
        spec["hostname"] = hostname
    return spec


def write_spec(bundle_dir: str, spec: dict) -> str:
    """Write ``bundle_dir/config.json`` (atomically) and return its path."""
    path = os.path.join(bundle_dir, "config.json")
    write_json(path, spec)
    return path


def load_spec(bundle_dir: str) -> dict:
    """Read and check ``bundle_dir/config.json``; :class:`InvalidInput` if unusable."""
    path = os.path.join(bundle_dir, "config.json")
    try:
        with open(path) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise InvalidInput(f"bundle {bundle_dir}: no config.json") from None
    except (OSError, ValueError) as e:
        raise InvalidInput(f"bundle {bundle_dir}: cannot read config.json: {e}") from None
    validate(spec, bundle_dir)
    return spec


def rootfs_path(spec: dict, bundle_dir: str) -> str:
    """``root.path``, which the spec allows relative to the bundle directory."""
    return os.path.join(os.path.abspath(bundle_dir), spec["root"]["path"])


def namespace_entries(spec: dict) -> list[tuple[str, str | None]]:
    """``[(kernel kind, path or None), ...]`` from ``linux.namespaces``."""
    return [(NAMESPACE_KINDS[ns["type"]], ns.get("path") or None)
            for ns in spec.get("linux", {}).get("namespaces", [])]


def validate(spec: dict, bundle_dir: str) -> None:
    """Check the fields the runtime uses, so that a mistake is one clear error up front
    instead of a half-made container."""
    def bad(message):
        raise InvalidInput(f"config.json: {message}")

    if not isinstance(spec, dict):
        bad("not a JSON object")
    process = spec.get("process")
    if not isinstance(process, dict):
        bad("missing 'process'")
    args = process.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        bad("process.args must be a non-empty list of strings")
    if not isinstance(process.get("env", []), list):
        bad("process.env must be a list of KEY=VALUE strings")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        bad(f"process.cwd must be an absolute path, not {cwd!r}")
    user = process.get("user", {})
    for key in ("uid", "gid"):
        if not isinstance(user.get(key, 0), int) or user.get(key, 0) < 0:
            bad(f"process.user.{key} must be a non-negative integer")
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        for name in process.get("capabilities", {}).get(kind, []):
            if name not in CAP_NUMBERS:
                bad(f"unknown capability {name!r} in process.capabilities.{kind}")
    root = spec.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        bad("missing root.path")
    if not os.path.isdir(rootfs_path(spec, bundle_dir)):
        bad(f"root.path {rootfs_path(spec, bundle_dir)} is not a directory")
    for ns in spec.get("linux", {}).get("namespaces", []):
        if ns.get("type") not in NAMESPACE_KINDS:
            bad(f"unknown namespace type {ns.get('type')!r}")
        if ns["type"] == "user":
            bad("user namespaces are not supported by this runtime yet")
        if ns.get("path") and not os.path.exists(ns["path"]):
            bad(f"namespace path {ns['path']} does not exist")
    for m in spec.get("mounts", []):
        if not isinstance(m, dict) or not str(m.get("destination", "")).startswith("/"):
            bad(f"mount {m!r}: destination must be an absolute path")
