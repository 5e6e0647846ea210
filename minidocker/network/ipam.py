"""IP address management: which container has which address on a network.

Each network keeps its leases in ``$ROOT/networks/<name>/leases.json``::

    {"last": "172.17.0.3",
     "leases": {"172.17.0.2": {"Container": "<id>", "Name": "web", "Pid": 4242,
                                "PidStart": 123456, "Aliases": [...]}}}

Rules, as Docker's default IPAM keeps them:

* the network address, the gateway and the broadcast address are never handed out;
* an address belongs to one live container at a time: every read-modify-write of the
  file happens under ``paths.locked("networks")`` (an ``flock``), so twenty ``run``
  commands started at once get twenty different addresses;
* allocation is *serial*: the next free address after the last one handed out, wrapping
  around at the end. A just-released address is therefore not reused at once (a peer
  may still have it in its ARP cache), which is why the slide shows .56, .57, .58 ...;
* a lease remembers the pid (and its start time) of the container it was made for, so
  that a lease whose container died without ``rm`` (a crash, a ``kill -9`` of
  minidocker) can be recognised as stale and released.

Callers hold ``paths.locked("networks")`` around :func:`allocate` and :func:`release`.

That lock and this file belong to one data root. Two data roots (say, yours and a test
suite's) may use the same Linux bridge, though, and then their containers share one
Ethernet segment: the same address twice would break both. So an address is also
*claimed* host-wide, by creating ``/run/minidocker/addresses/<bridge>/<ip>`` with
``O_CREAT|O_EXCL`` -- the kernel guarantees that only one process succeeds. ``/run`` is
a tmpfs: claims vanish with a reboot, like the containers they describe.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os

from .. import paths
from ..kernel import processes
from ..errors import Conflict
from . import records


def leases_path(network_name: str) -> str:
    return os.path.join(records.network_dir(network_name), "leases.json")


def load(network_name: str) -> dict:
    try:
        return paths.read_json(leases_path(network_name))
    except FileNotFoundError:
        return {"last": None, "leases": {}}


def save(network_name: str, table: dict) -> None:
    paths.write_json(leases_path(network_name), table)


def lease_is_alive(lease: dict) -> bool:
    """Is the container that holds ``lease`` still running? Its init's pid *and* start
    time (``PidStart``) must match: a pid alone may have been given to a new process."""
    pid, started = lease.get("Pid"), lease.get("PidStart")
    return bool(pid) and started is not None and processes.is_alive(pid, started)


CLAIMS_DIR = "/run/minidocker/addresses"


def _claim_path(bridge: str, ip: str) -> str:
    return os.path.join(CLAIMS_DIR, bridge, ip)


def claim(bridge: str, ip: str, entry: dict) -> bool:
    """Claim ``ip`` on ``bridge`` for the whole host; False if a live container has it."""
    path = _claim_path(bridge, ip)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    holder = json.load(f)
            except (OSError, ValueError):
                holder = {}
            if holder and lease_is_alive(holder):
                return False
            try:
                os.unlink(path)  # its container is dead: the claim is stale
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(entry, f)
        return True
    return False


def read_claim(bridge: str, ip: str) -> dict | None:
    """Who claims ``ip`` on ``bridge`` (the entry of its lease), or None."""
    try:
        with open(_claim_path(bridge, ip)) as f:
            holder = json.load(f)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def unclaim(bridge: str, ip: str, container_id: str) -> None:
    path = _claim_path(bridge, ip)
    try:
        with open(path) as f:
            holder = json.load(f)
    except (OSError, ValueError):
        return
    if holder.get("Container") == container_id:
        try:
            os.unlink(path)
            os.rmdir(os.path.dirname(path))  # only succeeds when it was the last claim
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise


def allocate(network_name: str, subnet: ipaddress.IPv4Network, gateway: str,
             entry: dict, wanted: str | None = None, bridge: str | None = None) -> str:
    """Lease the next free address of ``subnet`` for ``entry`` (a dict stored with the
    lease: container id, name, pid). With ``bridge``, the address is also claimed for the
    whole host. Call under ``paths.locked("networks")``."""
    table = load(network_name)
    taken = set(table["leases"]) | {gateway}
    if wanted:
        if wanted in taken or (bridge and not claim(bridge, wanted, entry)):
            raise Conflict(f"Address already in use: {wanted} on network {network_name}")
        if ipaddress.ip_address(wanted) not in subnet:
            raise Conflict(f"Address {wanted} is not in the subnet {subnet} of network {network_name}")
        address = wanted
    else:
        last = table.get("last")
        while True:
            address = _next_free(subnet, taken, last)
            if not bridge or claim(bridge, address, entry):
                break
            taken.add(address)  # another data root's container has it
            last = address
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


def release(network_name: str, container_id: str, bridge: str | None = None) -> list[str]:
    """Give back every address ``container_id`` holds on the network; returns them."""
    table = load(network_name)
    freed = [ip for ip, lease in table["leases"].items() if lease.get("Container") == container_id]
    if freed:
        for ip in freed:
            del table["leases"][ip]
            if bridge:
                unclaim(bridge, ip, container_id)
        save(network_name, table)
    return freed


def leases_of(network_name: str) -> dict:
    return load(network_name)["leases"]
