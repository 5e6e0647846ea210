"""IP address management: which container has which address on a network.

Each network keeps its leases in ``$ROOT/networks/<name>/leases.json``::

    {"last": "172.17.0.3",
     "leases": {"172.17.0.2": {"Container": "<id>", "Name": "web", "Pid": 4242,
                                "PidStart": 123456, "Aliases": [...]}}}

Rules, as Docker's default IPAM keeps them:

* the network address, the gateway and the broadcast address are never handed out;
* an address belongs to one live container at a time: every read-modify-write of the
  file happens under ``paths.locked("networks")`` (an ``flock``), so twenty ``run``s
  started at once get twenty different addresses;
* allocation is *serial*: the next free address after the last one handed out, wrapping
  around at the end. A just-released address is therefore not reused at once (a peer
  may still have it in its ARP cache), which is why the slide shows .56, .57, .58 ...;
* a lease remembers the pid (and its start time) of the container it was made for, so
  that a lease whose container died without ``rm`` (a crash, a ``kill -9`` of
  minidocker) can be recognised as stale and released.

Callers hold ``paths.locked("networks")`` around :func:`allocate` and :func:`release`.
"""

from __future__ import annotations

import ipaddress
import os

from .. import paths
from ..errors import Conflict
from . import networks


def leases_path(network_name: str) -> str:
    return os.path.join(networks.network_dir(network_name), "leases.json")


def load(network_name: str) -> dict:
    try:
        return paths.read_json(leases_path(network_name))
    except FileNotFoundError:
        return {"last": None, "leases": {}}


def save(network_name: str, table: dict) -> None:
    paths.write_json(leases_path(network_name), table)


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat``: when the process started, in clock ticks since
    boot. A pid can be reused after its process dies; pid *and* start time cannot."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces: split after it
    return int(stat.rsplit(")", 1)[1].split()[19])


def lease_is_alive(lease: dict) -> bool:
    pid = lease.get("Pid")
    return bool(pid) and process_start_time(pid) == lease.get("PidStart")


def allocate(network_name: str, subnet: ipaddress.IPv4Network, gateway: str,
             entry: dict, wanted: str | None = None) -> str:
    """Lease the next free address of ``subnet`` for ``entry`` (a dict stored with the
    lease: container id, name, pid). Call under ``paths.locked("networks")``."""
    table = load(network_name)
    taken = set(table["leases"]) | {gateway}
    if wanted:
        if wanted in taken:
            raise Conflict(f"Address already in use: {wanted} on network {network_name}")
        if ipaddress.ip_address(wanted) not in subnet:
            raise Conflict(f"Address {wanted} is not in the subnet {subnet} of network {network_name}")
        address = wanted
    else:
        address = _next_free(subnet, taken, table.get("last"))
    table["leases"][address] = entry
    table["last"] = address
    save(network_name, table)
    return address


def _next_free(subnet, taken, last) -> str:
    hosts = subnet.num_addresses - 2  # without the network and broadcast addresses
    first = int(subnet.network_address) + 1
    start = (int(ipaddress.ip_address(last)) - first + 1) if last else 0
    for step in range(hosts):
        candidate = str(ipaddress.IPv4Address(first + (start + step) % hosts))
        if candidate not in taken:
            return candidate
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {subnet}")


def release(network_name: str, container_id: str) -> list[str]:
    """Give back every address ``container_id`` holds on the network; returns them."""
    table = load(network_name)
    freed = [ip for ip, lease in table["leases"].items() if lease.get("Container") == container_id]
    if freed:
        for ip in freed:
            del table["leases"][ip]
        save(network_name, table)
    return freed


def leases_of(network_name: str) -> dict:
    return load(network_name)["leases"]
