"""The ``network`` verbs that make, remove or read a whole network: ``network create``,
``network rm``, ``network prune`` and who is on one (``network inspect``). The records themselves are
:mod:`.records`; a container's own interfaces are :mod:`minidocker.network.attach`.
"""

from __future__ import annotations

from .. import paths
from ..errors import Conflict, InvalidInput, NotFound
from . import bridge, dns, firewall, ipam, records
from .attach import cleanup_stale, release_locked
from .veth import mac_for


def create_network(name: str, subnet: str | None = None, gateway: str | None = None,
                   labels: dict | None = None, internal: bool = False) -> dict:
    """``network create``: store the record, then make its bridge (rolled back on failure)."""
    rec = records.create_record(name, subnet=subnet, gateway=gateway, labels=labels, internal=internal)
    try:
        with firewall.host_lock():
            bridge.set_up(rec)
    except BaseException:
        with firewall.host_lock():
            bridge.take_down(records.bridge_name(rec))
        records.delete_record(name)
        raise
    records.emit(rec, "create")
    return rec


def remove_network(ref: str) -> str:
    """``network rm``: refuse while containers are attached (Docker's message), else
    delete the bridge, its rules and the record. Returns the name removed."""
    rec = records.get(ref)
    name = rec["Name"]
    if name in records.PREDEFINED:
        raise InvalidInput(f"{name} is a pre-defined network and cannot be removed")
    with paths.locked("networks"):
        live = [l for l in ipam.leases_of(name).values() if ipam.lease_is_alive(l)]
        if live:
            raise Conflict(f"error while removing network: network {name} id {rec['Id']} "
                           f"has active endpoints")
        for lease in list(ipam.leases_of(name).values()):
            release_locked(lease["Container"])
        dns.stop(name)  # a server left running, or the state file of a dead one
        with firewall.host_lock():
            bridge.take_down(records.bridge_name(rec))
        records.delete_record(name)
    records.emit(rec, "destroy")
    return name


def prune_networks() -> list[str]:
    """``network prune``: remove every user-defined network no container is on (the
    default ``bridge``, ``host`` and ``none`` stay). Returns the names removed."""
    cleanup_stale()
    removed = []
    for rec in records.list_records():
        if rec["Name"] in records.PREDEFINED or ipam.leases_of(rec["Name"]):
            continue
        try:
            remove_network(rec["Name"])
        except (Conflict, NotFound):
            continue        # joined or removed by someone else meanwhile
        removed.append(rec["Name"])
    return removed


def containers_on(name: str) -> dict:
    """``network inspect``'s Containers: {id: {Name, IPv4Address, MacAddress, EndpointID}}."""
    rec = records.get(name)
    if rec["Driver"] != "bridge":
        return {}
    prefix = records.subnet_of(rec).prefixlen
    found = {}
    for ip, lease in ipam.leases_of(rec["Name"]).items():
        found[lease["Container"]] = {"Name": lease.get("Name", ""), "EndpointID": lease.get("EndpointID", ""),
                                     "MacAddress": mac_for(ip), "IPv4Address": f"{ip}/{prefix}",
                                     "IPv6Address": ""}
    return found
