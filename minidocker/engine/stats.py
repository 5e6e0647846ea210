"""``docker stats``: what a container uses, read live from its cgroup (the cgroup slide).

The kernel counts, for every cgroup, the memory its processes hold, the CPU time they
used and how many there are (:meth:`minidocker.kernel.cgroups.Cgroup.stats`, v1 and
v2). A CPU *percentage* needs two readings: the container's CPU time grew by ``d_cpu``
while the whole machine's (``/proc/stat``'s first line) grew by ``d_system``; the
container used ``d_cpu / d_system * online CPUs * 100`` percent. That is why Docker's
answer carries the previous reading too (``precpu_stats``), and why ``docker stats
--no-stream`` takes a second: the daemon takes two readings one second apart.

Memory as ``docker stats`` shows it is the usage minus the page cache the kernel could
drop at once (``inactive_file``): file pages are charged to the group that read them.

The shape is Docker's ``types.StatsJSON``, so that the docker CLI prints it, and
:func:`row` is its arithmetic, for ``minidocker stats``.
"""

from __future__ import annotations

import os
import time

from .. import clock
from .containers import Container

ZERO_TIME = "0001-01-01T00:00:00Z"


def _system_cpu_ns() -> int:
    """The machine's CPU time so far, all CPUs (``/proc/stat``'s ``cpu`` line, in
    clock ticks), in nanoseconds: what Docker calls ``system_cpu_usage``."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    ticks = sum(int(x) for x in fields)
    return ticks * 10**9 // os.sysconf("SC_CLK_TCK")


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _networks(pid: int) -> dict:
    """Per-interface counters in the container's network namespace: ``/proc/PID/net/dev``
    shows the namespace of PID, not ours."""
    out = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, data = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in data.split()]
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2],
                     "rx_dropped": v[3], "tx_bytes": v[8], "tx_packets": v[9],
                     "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def _blkio(cg) -> list[dict]:
    """Bytes read and written to block devices: v1 ``blkio.throttle.io_service_bytes``,
    v2 ``io.stat`` (rbytes/wbytes), in Docker's list form."""
    entries = []
    path = cg.path("blkio") if hasattr(cg, "path") else None
    try:
        if path and os.path.exists(os.path.join(path, "blkio.throttle.io_service_bytes")):
            with open(os.path.join(path, "blkio.throttle.io_service_bytes")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[1] in ("Read", "Write"):
                        major, minor = parts[0].split(":")
                        entries.append({"major": int(major), "minor": int(minor),
                                        "op": parts[1], "value": int(parts[2])})
        else:
            io_stat = os.path.join(getattr(cg, "dir", "") or "", "io.stat")
            if os.path.exists(io_stat):
                with open(io_stat) as f:
                    for line in f:
                        dev, *kvs = line.split()
                        major, minor = dev.split(":")
                        kv = dict(x.split("=") for x in kvs if "=" in x)
                        entries.append({"major": int(major), "minor": int(minor), "op": "read",
                                        "value": int(kv.get("rbytes", 0))})
                        entries.append({"major": int(major), "minor": int(minor), "op": "write",
                                        "value": int(kv.get("wbytes", 0))})
    except (OSError, ValueError):
        pass
    return entries


def _empty_cpu() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": 0, "online_cpus": 0,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def sample(c: Container, previous: dict | None = None) -> dict:
    """One reading, in Docker's shape, with ``previous`` as its ``precpu_stats``."""
    from ..kernel import cgroups
    c.reload()
    running = bool(c.state["State"].get("Running"))
    base = {"read": clock.rfc3339() if running else ZERO_TIME,
            "preread": previous["read"] if previous else ZERO_TIME,
            "name": "/" + c.name, "id": c.id, "num_procs": 0, "storage_stats": {},
            "precpu_stats": previous["cpu_stats"] if previous else _empty_cpu()}
    if not running:
        return {**base, "pids_stats": {}, "blkio_stats": _empty_blkio(),
                "cpu_stats": _empty_cpu(), "memory_stats": {}}
    cg = cgroups.open_cgroup(c.cgroup)
    s = cg.stats()
    v1 = isinstance(cg, cgroups.CgroupV1)
    inactive = s.get("memory_inactive_file") or 0
    memory = {"usage": s.get("memory_usage") or 0, "max_usage": s.get("memory_peak") or 0,
              "stats": {("total_inactive_file" if v1 else "inactive_file"): inactive},
              "limit": s.get("memory_limit") or _host_memory()}
    if s.get("oom_kills"):
        memory["failcnt"] = s["oom_kills"]
    cpu = {"cpu_usage": {"total_usage": s.get("cpu_usage_ns") or 0,
                         "usage_in_kernelmode": 0, "usage_in_usermode": 0},
           "system_cpu_usage": _system_cpu_ns(), "online_cpus": os.cpu_count() or 1,
           "throttling_data": {"periods": s.get("cpu_periods") or 0,
                               "throttled_periods": s.get("cpu_throttled_periods") or 0,
                               "throttled_time": s.get("cpu_throttled_ns") or 0}}
    pids = {"current": s.get("pids_current") or 0}
    if s.get("pids_limit"):
        pids["limit"] = s["pids_limit"]
    blkio = _empty_blkio()
    blkio["io_service_bytes_recursive"] = _blkio(cg) or None
    out = {**base, "pids_stats": pids, "blkio_stats": blkio, "cpu_stats": cpu,
           "memory_stats": memory}
    networks = _networks(c.state["State"]["Pid"])
    if networks:
        out["networks"] = networks
    return out


def _empty_blkio() -> dict:
    return {k: None for k in ("io_service_bytes_recursive", "io_serviced_recursive",
                              "io_queue_recursive", "io_service_time_recursive",
                              "io_wait_time_recursive", "io_merged_recursive",
                              "io_time_recursive", "sectors_recursive")}


def sample_pair(c: Container, one_shot: bool = False, interval: float = 1.0) -> dict:
    """One reading with a previous one ``interval`` seconds before it (Docker's
    ``stream=false``), or just one (``one-shot=true``, no CPU percentage possible)."""
    first = sample(c)
    if one_shot or not c.state["State"].get("Running"):
        return first
    time.sleep(interval)
    return sample(c, first)


def samples(c: Container, interval: float = 1.0, stop=None):
    """Readings every ``interval`` seconds while the container runs."""
    previous = None
    while True:
        current = sample(c, previous)
        yield current
        if not c.state["State"].get("Running") or (stop and stop()):
            return
        previous = current
        time.sleep(interval)


# ------------------------------------------------------------- the docker CLI's columns
def cpu_percent(s: dict) -> float:
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    d_cpu = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    d_system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or 1
    if d_system > 0 and d_cpu > 0:
        return d_cpu / d_system * online * 100.0
    return 0.0


def memory_usage(s: dict) -> tuple[float, float]:
    """(usage without the page cache that could go at once, limit)."""
    mem = s.get("memory_stats") or {}
    usage = mem.get("usage", 0)
    stats = mem.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    if inactive < usage:
        usage -= inactive
    return float(usage), float(mem.get("limit", 0))


def row(s: dict) -> dict:
    """``docker stats``'s columns for one reading (the arithmetic of docker's CLI)."""
    from ..units import human_size
    usage, limit = memory_usage(s)
    rx = sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values())
    read = write = 0
    for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        if e["op"].lower() == "read":
            read += e["value"]
        elif e["op"].lower() == "write":
            write += e["value"]
    running = s["read"] != ZERO_TIME
    return {
        "ID": s["id"][:12], "Name": s["name"].lstrip("/"),
        "CPUPerc": f"{cpu_percent(s):.2f}%" if running else "0.00%",
        "MemUsage": f"{_binary(usage)} / {_binary(limit)}" if running else "0B / 0B",
        "MemPerc": f"{usage / limit * 100 if limit else 0:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(read)} / {human_size(write)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)),
    }


def _binary(n: float) -> str:
    """go-units' ``BytesSize``: 1024-based, ``%.4g`` (``1.5MiB``, ``7.66GiB``)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"
