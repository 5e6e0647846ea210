"""Network records: what ``minidocker network ls`` lists, as plain JSON under the data root.

Docker knows three networks out of the box, and so do we:

* ``bridge`` -- the default. A Linux bridge (``minidocker0``, like ``docker0``) with a
  private /16; every container gets a veth pair plugged into it.
* ``host``   -- no network namespace of its own: the container sees the host's interfaces.
* ``none``   -- a network namespace with only ``lo`` in it.

``minidocker network create NAME`` adds a *user-defined* bridge network (Linux bridge
``br-<12 hex of its id>``, Docker's naming). On such networks the containers find each
other by name, through a DNS server of the network's own (see dns.py).

Layout::

    $ROOT/networks/<name>/network.json   the record below (Docker's inspect fields)
    $ROOT/networks/<name>/leases.json    the addresses handed out (see ipam.py)
    $ROOT/networks/<name>/dns.json       its DNS server, while one runs (see dns.py)
    $ROOT/networks/ports.json            host ports published by containers (see ports.py)
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import shutil

from .. import clock, events, paths
from ..errors import Conflict, InvalidInput, NotFound

DEFAULT_NETWORK = "bridge"
PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}

#: The default bridge's Linux name and subnet; tests (and users who already have a
#: 172.17/16) change them with these variables.
BRIDGE_ENV = "MINIDOCKER_BRIDGE"
SUBNET_ENV = "MINIDOCKER_BRIDGE_SUBNET"
DEFAULT_BRIDGE = "minidocker0"
DEFAULT_SUBNET = "172.17.0.0/16"

#: Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20 pieces.
POOLS = [f"172.{n}.0.0/16" for n in range(17, 32)] + \
        [f"192.168.{n}.0/20" for n in range(0, 256, 16)]

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
IFNAMSIZ = 15  # the kernel's limit on an interface name (16 bytes with the NUL)


def networks_dir() -> str:
    return os.path.join(paths.data_root(), "networks")


def network_dir(name: str) -> str:
    return os.path.join(networks_dir(), name)


def record_path(name: str) -> str:
    return os.path.join(network_dir(name), "network.json")


def _record(name, net_id, bridge, subnet, gateway, labels=None, internal=False) -> dict:
    return {
        "Name": name,
        "Id": net_id,
        "Created": clock.rfc3339(),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": subnet, "Gateway": gateway}]},
        "Internal": internal,
        "Attachable": False,
        "Options": {"com.docker.network.bridge.name": bridge},
        "Labels": labels or {},
    }


def _virtual_record(name: str) -> dict:
    """``host`` and ``none`` have nothing to store; their ids are derived from the name so
    that they stay the same from one command to the next."""
    return {"Name": name, "Id": hashlib.sha256(f"minidocker-{name}".encode()).hexdigest(),
            "Created": "", "Scope": "local", "Driver": PREDEFINED[name], "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Attachable": False, "Options": {}, "Labels": {}}


# ----------------------------------------------------------------------- subnets
def host_ipv4_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the host already routes (from ``/proc/net/route``: no pyroute2
    needed). A new bridge must not overlap any of them, or packets for those addresses
    would go to the wrong place."""
    found = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue  # the default route overlaps everything; it does not count
                # /proc/net/route prints addresses in host (little-endian) byte order
                dest_ip = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
                mask_ip = ipaddress.IPv4Address(mask.to_bytes(4, "little"))
                found.append((fields[0], ipaddress.IPv4Network(f"{dest_ip}/{mask_ip}", strict=False)))
    except (OSError, StopIteration):
        pass
    return found


def subnet_in_use(subnet: ipaddress.IPv4Network, ignore_device: str | None = None,
                  ignore_network: str | None = None) -> str | None:
    """Who already uses (part of) ``subnet``: a host interface or another network; None if free."""
    for device, net in host_ipv4_networks():
        if device != ignore_device and net.overlaps(subnet):
            return f"host interface {device} ({net})"
    for rec in list_records():
        if rec["Name"] == ignore_network:
            continue
        for cfg in rec["IPAM"]["Config"]:
            if ipaddress.ip_network(cfg["Subnet"]).overlaps(subnet):
                return f"network {rec['Name']} ({cfg['Subnet']})"
    return None


def pick_free_subnet(ignore_device: str | None = None) -> ipaddress.IPv4Network:
    for candidate in POOLS:
        net = ipaddress.ip_network(candidate)
        if subnet_in_use(net, ignore_device=ignore_device) is None:
            return net
    raise Conflict("could not find an available, non-overlapping IPv4 address pool "
                   "among the defaults to assign to the network")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise InvalidInput(f"invalid subnet {text!r}: expected an IPv4 CIDR like 10.10.0.0/16") from None
    if net.prefixlen > 30:
        raise InvalidInput(f"subnet {text} is too small: it needs room for a gateway and containers")
    return net


# ----------------------------------------------------------------------- records
def default_record() -> dict:
    """The record of the default ``bridge`` network, made on first use.

    Its Linux bridge is ``$MINIDOCKER_BRIDGE`` (``minidocker0``) and its subnet
    ``$MINIDOCKER_BRIDGE_SUBNET`` (172.17.0.0/16) -- unless that subnet is already routed
    on the host, in which case we take the next free pool, as dockerd does.
    """
    path = record_path(DEFAULT_NETWORK)
    if os.path.exists(path):
        return paths.read_json(path)
    with paths.locked("networks"):
        if os.path.exists(path):
            return paths.read_json(path)
        bridge = os.environ.get(BRIDGE_ENV) or DEFAULT_BRIDGE
        check_bridge_name(bridge)
        wanted = os.environ.get(SUBNET_ENV)
        subnet = parse_subnet(wanted or DEFAULT_SUBNET)
        clash = subnet_in_use(subnet, ignore_device=bridge, ignore_network=DEFAULT_NETWORK)
        if clash:
            if wanted:
                raise Conflict(f"{SUBNET_ENV}={wanted} overlaps {clash}")
            subnet = pick_free_subnet(ignore_device=bridge)
        gateway = str(next(subnet.hosts()))
        rec = _record(DEFAULT_NETWORK, secrets.token_hex(32), bridge, str(subnet), gateway)
        rec["Options"].update({"com.docker.network.bridge.default_bridge": "true"})
        paths.write_json(path, rec)
        return rec


def check_bridge_name(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or name.strip() != name:
        raise InvalidInput(f"invalid bridge name {name!r}: at most {IFNAMSIZ} characters, no '/' or spaces")


def list_records() -> list[dict]:
    """The stored bridge networks (not ``host``/``none``, which are not stored)."""
    found = []
    try:
        names = sorted(os.listdir(networks_dir()))
    except FileNotFoundError:
        return found
    for name in names:
        try:
            found.append(paths.read_json(record_path(name)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


def all_networks() -> list[dict]:
    """Every network ``network ls`` shows: the stored ones plus ``host`` and ``none``."""
    stored = {rec["Name"]: rec for rec in list_records()}
    stored.setdefault(DEFAULT_NETWORK, default_record())
    for name in ("host", "none"):
        stored[name] = _virtual_record(name)
    return sorted(stored.values(), key=lambda r: r["Name"])


def get(ref: str) -> dict:
    """A network by name, full id or unique id prefix (NotFound otherwise)."""
    if ref in ("host", "none"):
        return _virtual_record(ref)
    if ref == DEFAULT_NETWORK:
        return default_record()
    if NAME_RE.match(ref) and os.path.exists(record_path(ref)):
        return paths.read_json(record_path(ref))
    matches = [rec for rec in all_networks() if rec["Id"].startswith(ref)] if len(ref) >= 1 else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise NotFound(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
    raise NotFound(f"network {ref} not found")


def bridge_name(rec: dict) -> str:
    return rec["Options"]["com.docker.network.bridge.name"]


def subnet_of(rec: dict) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(rec["IPAM"]["Config"][0]["Subnet"])


def gateway_of(rec: dict) -> str:
    return rec["IPAM"]["Config"][0]["Gateway"]


def create_record(name: str, subnet: str | None = None, gateway: str | None = None,
                  labels: dict | None = None, internal: bool = False) -> dict:
    """Store a new user-defined bridge network (the Linux bridge is made by the caller)."""
    if not NAME_RE.match(name):
        raise InvalidInput(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if name in PREDEFINED:
        raise Conflict(f"network with name {name} already exists")
    with paths.locked("networks"):
        if os.path.exists(record_path(name)):
            raise Conflict(f"network with name {name} already exists")
        net_id = secrets.token_hex(32)
        bridge = "br-" + net_id[:12]
        if subnet:
            net = parse_subnet(subnet)
            clash = subnet_in_use(net)
            if clash:
                raise Conflict(f"Pool overlaps with other one on this address space: {clash}")
        else:
            net = pick_free_subnet()
        if gateway:
            try:
                gw = ipaddress.IPv4Address(gateway)
            except ValueError:
                raise InvalidInput(f"invalid gateway address {gateway!r}") from None
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise InvalidInput(f"no matching subnet for gateway {gateway}")
        else:
            gw = next(net.hosts())
        rec = _record(name, net_id, bridge, str(net), str(gw), labels=labels, internal=internal)
        paths.write_json(record_path(name), rec)
        return rec


def delete_record(name: str) -> None:
    shutil.rmtree(network_dir(name), ignore_errors=True)


def emit(rec: dict, action: str, container: str | None = None) -> None:
    """Log a network event as Docker does (``docker events``): the network's id as the
    actor, its name and driver -- and for ``connect``/``disconnect`` the container --
    as attributes."""
    attrs = {"name": rec["Name"], "type": rec.get("Driver", "bridge")}
    if container:
        attrs["container"] = container
    events.emit("network", action, rec["Id"], attrs)
