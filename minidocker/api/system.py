"""``/_ping`` and ``/version``: how a client learns whom it talks to.

Every Docker client starts with ``/_ping`` (``HEAD`` or ``GET``): the answer's headers
say which API version the daemon speaks (``API-Version``), its OS (``OSType``), whether
it is experimental, and which builder it prefers. A client newer than the daemon then
*negotiates down*: it puts the daemon's version in front of every path
(``/v1.41/containers/json``). minidocker sends no ``Builder-Version`` header, which
means the classic builder: ``docker build`` sends its context as a tar to
``POST /build`` (BuildKit's session protocol would be a different world).
"""

from __future__ import annotations

import os
import platform
import sys

from .. import __version__
from .http import json_response, text_response
from .router import API_VERSION, MIN_API_VERSION, route


def _ping_headers() -> dict:
    return {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


@route("GET", "/_ping")
def ping(req):
    return text_response("OK", headers=_ping_headers())


@route("HEAD", "/_ping")
def ping_head(req):
    # moby: a HEAD answer says Content-Length: 0 (a GET's would be 2)
    return text_response("", headers=_ping_headers())


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def version_info() -> dict:
    """``docker version``'s "Server" part (moby's ``types.Version``)."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
               "Arch": _arch(), "KernelVersion": os.uname().release, "GitCommit": "",
               "GoVersion": python, "BuildTime": "", "Experimental": "false"}
    return {
        "Platform": {"Name": "minidocker"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": python, "Os": "linux", "Arch": _arch(),
        "KernelVersion": os.uname().release, "BuildTime": "", "Experimental": False,
    }


@route("GET", "/version")
def version(req):
    return json_response(version_info())


# ------------------------------------------------------------------------------ info
def _os_release() -> dict:
    out = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    out[key] = value.strip('"')
    except OSError:
        pass
    return out


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _proc_flag(path: str) -> bool:
    try:
        with open(path) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _engine_id(root: str) -> str:
    """Docker shows a random engine ID made once; ours is derived from the machine and
    the data root, so it is stable without writing anything."""
    import hashlib
    try:
        with open("/etc/machine-id") as f:
            machine = f.read().strip()
    except OSError:
        machine = os.uname().nodename
    digest = hashlib.sha256(f"{machine}:{root}".encode()).hexdigest().upper()
    return ":".join(digest[i:i + 4] for i in range(0, 48, 4))


def info_document() -> dict:
    """``docker info``'s facts (moby's ``types.Info``): counts from the data root, the
    machine's kernel, cgroups, CPUs and memory, and how this engine is built (overlay
    storage, the json-file log, cgroupfs, the minidocker and runc runtimes)."""
    import shutil
    import threading
    from .. import clock, paths
    from ..engine.containers import list_containers
    from ..image.store import Store
    from ..kernel import cgroups
    from ..registry import auth
    root = paths.data_root()
    states = [c.status for c in list_containers()]
    running = sum(s in ("running", "restarting") for s in states)
    paused = sum(s == "paused" for s in states)
    try:
        images = len(Store().image_ids())
    except OSError:
        images = 0
    cgroup_version = cgroups.detect_version()
    osr = _os_release()
    try:
        nfd = len(os.listdir("/proc/self/fd"))
    except OSError:
        nfd = 0
    insecure = ["127.0.0.0/8"] + [r for r in auth.insecure_registries() if "/" in r]
    security = ["name=seccomp,profile=default"]
    if cgroup_version == 2:
        security.append("name=cgroupns")
    runc = shutil.which("runc")
    return {
        "ID": _engine_id(root),
        "Containers": len(states), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(states) - running - paused, "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": cgroup_version == 2, "KernelMemory": False,
        "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "OomKillDisable": False,
        "IPv4Forwarding": _proc_flag("/proc/sys/net/ipv4/ip_forward"),
        "BridgeNfIptables": _proc_flag("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "BridgeNfIp6tables": _proc_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
        "Debug": False, "NFd": nfd, "NGoroutines": threading.active_count(),
        "SystemTime": clock.rfc3339(), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": str(cgroup_version),
        "NEventsListener": 0, "KernelVersion": os.uname().release,
        "OperatingSystem": osr.get("PRETTY_NAME", "Linux"),
        "OSVersion": osr.get("VERSION_ID", ""), "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": insecure,
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True,
                                           "Official": True}},
            "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": os.uname().nodename, "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": __version__, "ClusterStore": "", "ClusterAdvertise": "",
        "Runtimes": {"minidocker": {"path": sys.executable + " -m minidocker.runtime"},
                     **({"runc": {"path": runc}} if runc else {})},
        "DefaultRuntime": "minidocker",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        # Containers keep running when the service stops: each has its own monitor.
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": security,
        "Warnings": None,
    }


@route("GET", "/info")
def info(req):
    return json_response(info_document())


# -------------------------------------------------------------------------------- df
@route("GET", "/system/df")
def disk_usage(req):
    """``docker system df [-v]``: images (with how many containers use each), containers
    (their writable layer's size), volumes (their size and users), no build cache
    records (the step cache is a few small files)."""
    from ..engine import volumes
    from ..engine.containers import list_containers
    from ..image.store import Store
    from .containers import summary
    from .images import image_summaries
    store = Store()
    containers = list_containers()
    using: dict[str, int] = {}
    for c in containers:
        using[c.image_id] = using.get(c.image_id, 0) + 1
    images = image_summaries(store, all_images=True)
    layer_count: dict[str, int] = {}
    for image in images:
        for diff_id in store.image_diff_ids(image["Id"]):
            layer_count[diff_id] = layer_count.get(diff_id, 0) + 1
    layers_size = sum(store.layer_size(d) for d in layer_count)
    for image in images:
        image["Containers"] = using.get(image["Id"], 0)
        image["SharedSize"] = sum(store.layer_size(d) for d in store.image_diff_ids(image["Id"])
                                  if layer_count[d] > 1)
    vols = []
    for rec in volumes.list_volumes():
        vols.append({**rec, "Labels": rec.get("Labels") or {}, "UsageData": {
            "Size": volumes._disk_usage(volumes.data_dir(rec["Name"])),
            "RefCount": len(volumes.users(rec["Name"]))}})
    return json_response({"LayersSize": layers_size, "Images": images,
                          "Containers": [summary(c, size=True) for c in containers],
                          "Volumes": vols, "BuildCache": []})
