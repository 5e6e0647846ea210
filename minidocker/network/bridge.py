"""The Linux bridge every container of a network is plugged into (``docker0``'s job).

A bridge is a software Ethernet switch in the kernel. Giving it an address (the
network's gateway, 172.17.0.1/16) makes the host itself a member of the container
network: the kernel adds the route ``172.17.0.0/16 dev minidocker0`` and the host can
reach every container, and the containers can reach the host and, through it (routing +
NAT), the outside world.

By hand::

    ip link add minidocker0 type bridge
    ip addr add 172.17.0.1/16 dev minidocker0
    ip link set minidocker0 up

pyroute2 is imported inside the functions: it costs ~100 ms, and ``run --network none``
must not pay for it.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os

from .. import paths
from ..errors import Conflict
from . import firewall, records
from .veth import mac_for


def exists(name: str) -> bool:
    """Cheap check, without netlink: every interface of our namespace is in /sys/class/net."""
    return os.path.exists(f"/sys/class/net/{name}")


def is_bridge(name: str) -> bool:
    return os.path.isdir(f"/sys/class/net/{name}/bridge")


def ports(name: str) -> list[str]:
    """The interfaces plugged into bridge ``name`` (``/sys/class/net/NAME/brif/``)."""
    try:
        return sorted(os.listdir(f"/sys/class/net/{name}/brif"))
    except FileNotFoundError:
        return []


def _write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def mac_address(name: str) -> str:
    try:
        with open(f"/sys/class/net/{name}/address") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def ensure(name: str, gateway: str, prefixlen: int) -> bool:
    """Make bridge ``name`` with address ``gateway/prefixlen`` and bring it up (nothing
    to do if it is already there). Returns True when it had to be created.

    The bridge gets a MAC address of its own, made from the gateway's address like a
    container's (``02:42`` + its four bytes), as dockerd gives docker0 one. Left to the
    kernel, a bridge takes the lowest MAC of the interfaces plugged into it, and takes
    another when that interface goes: the containers, whose ARP caches still hold the
    old one, then cannot reach the gateway (their DNS server, their way out) for as long
    as the entry lives."""
    from pyroute2 import IPRoute
    created = False
    mac = mac_for(gateway)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found and not is_bridge(name):
            raise Conflict(f"cannot use {name} as a bridge: an interface of another kind has that name")
        if not found:
            try:
                ipr.link("add", ifname=name, kind="bridge", address=mac)
                created = True
            except Exception as e:  # NetlinkError: a concurrent minidocker made it first
                if getattr(e, "code", None) != errno.EEXIST:
                    raise
        index = ipr.link_lookup(ifname=name)[0]
        if mac_address(name) != mac:  # a bridge made before bridges got their own MAC
            ipr.link("set", index=index, address=mac)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)}
        if (gateway, prefixlen) not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            except Exception as e:
                if getattr(e, "code", None) != errno.EEXIST:
                    raise
        ipr.link("set", index=index, state="up")
    # Let packets addressed to 127.0.0.1:PORT that a DNAT rule redirects to a container
    # leave through this bridge. By default the kernel drops any packet with a 127/8
    # source that is about to leave a non-loopback interface ("martian"); route_localnet
    # lifts that for this one interface. MASQUERADE then replaces the 127.0.0.1 source.
    _write_sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    return created


def enable_ip_forward() -> None:
    """Let the host route packets between interfaces (container -> bridge -> eth0), what
    dockerd does at start-up. Only egress and traffic from other hosts need it; the host's
    own traffic to its containers does not."""
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() == "1":
                return
        _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    except OSError:
        pass  # read-only /proc/sys (inside a container): egress will not work, the rest will


def delete(name: str) -> None:
    """Remove bridge ``name`` (the kernel drops its address and route with it)."""
    if not exists(name):
        return
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except Exception as e:
                if getattr(e, "code", None) != errno.ENODEV:
                    raise


def prefixlen_of(subnet: str) -> int:
    return ipaddress.ip_network(subnet).prefixlen


# ------------------------------------------------------------------ who owns which bridge
#: One file per bridge minidocker made: ``{"root": DATA_ROOT, "network": NAME}``. A data
#: root deleted with its networks still up (a test that failed half-way, ``rm -rf``)
#: leaves a bridge nobody would remove; any later minidocker command finds it here.
REGISTRY_DIR = "/run/minidocker/bridges"


def register(name: str, root: str, network: str) -> None:
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    with open(os.path.join(REGISTRY_DIR, name), "w") as f:
        json.dump({"root": root, "network": network}, f)


def unregister(name: str) -> None:
    try:
        os.unlink(os.path.join(REGISTRY_DIR, name))
    except FileNotFoundError:
        pass


def orphans() -> list[str]:
    """Bridges whose data root no longer has their network, and with nothing plugged in."""
    found = []
    try:
        names = os.listdir(REGISTRY_DIR)
    except FileNotFoundError:
        return found
    for name in names:
        try:
            with open(os.path.join(REGISTRY_DIR, name)) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            continue
        record = os.path.join(owner.get("root", ""), "networks", owner.get("network", ""), "network.json")
        if not os.path.exists(record) and not ports(name):
            found.append(name)
    return found


# ------------------------------------------------------------------ a network's bridge, whole
def set_up(rec: dict) -> None:
    """The bridge of network ``rec`` as its containers need it: the Linux bridge with
    the gateway's address (:func:`ensure`), registered as this data root's
    (:func:`register`), and its firewall rules (egress NAT, forwarding). Idempotent.
    Call with :class:`.firewall.host_lock` held."""
    name, subnet = records.bridge_name(rec), records.subnet_of(rec)
    ensure(name, records.gateway_of(rec), subnet.prefixlen)
    register(name, paths.data_root(), rec["Name"])
    firewall.add_bridge(name, str(subnet), bool(rec.get("Internal")))


def take_down(name: str) -> None:
    """Undo :func:`set_up`: the bridge goes, with its registration and its firewall
    rules (and our chains, once no rule is left in them). Call with
    :class:`.firewall.host_lock` held."""
    delete(name)
    unregister(name)
    firewall.remove_bridge(name)
