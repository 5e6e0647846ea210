"""A veth pair: the virtual cable from a container's network namespace to the bridge.

A veth pair is two Ethernet interfaces joined back to back: what goes in one comes out
of the other. One end stays on the host and is plugged into the bridge; the other is
born in the container's network namespace as ``eth0``. By hand::

    ip link add veth1a2b3c4 type veth peer name eth0 address 02:42:ac:11:00:02 netns $PID
    ip link set veth1a2b3c4 master minidocker0 up
    nsenter -t $PID -n ip addr add 172.17.0.2/16 dev eth0
    nsenter -t $PID -n ip link set eth0 up
    nsenter -t $PID -n ip link set lo up
    nsenter -t $PID -n ip route add default via 172.17.0.1

($PID is the container's PID 1. The netlink messages are made by
:mod:`minidocker.kernel.netlink`.)

The host end's name is derived from the container id, so whatever is left of a crashed
container can be found again. When the container's namespace dies (its last process
exits), the kernel destroys the inner end, and with it the whole pair.
"""

from __future__ import annotations

import errno
import os

from ..kernel.netlink import Netlink


def host_name(container_id: str) -> str:
    return "veth" + container_id[:11]   # 15 characters: the kernel's IFNAMSIZ limit


def peer_name(container_id: str) -> str:
    return "tmp" + container_id[:11]


def mac_for(ip: str) -> str:
    """Docker's MAC rule: 02:42 and then the four bytes of the IPv4 address.
    (02: a locally administered unicast address, which no NIC vendor uses.)"""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def netns_of(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


def plug(container_id: str, pid: int, bridge: str, address: str, prefixlen: int,
         gateway: str | None, ifname: str = "eth0") -> str:
    """Connect the network namespace of process ``pid`` to ``bridge``; return the host
    end's name. On failure nothing is left behind."""
    host_end = host_name(container_id)
    with Netlink() as nl:
        # The inner end is made in the container's namespace (by the pid of any process
        # in it), already named and with its MAC: nothing to move or rename later.
        nl.add_veth(host_end, ifname, peer_netns_pid=pid, peer_mac=mac_for(address))
        try:
            nl.set_link(nl.index_of(host_end), up=True, master=nl.index_of(bridge))
            configure_inside(pid, ifname, address, prefixlen, gateway)
        except BaseException:
            remove(container_id)
            raise
    return host_end


def configure_inside(pid: int, ifname: str, address: str, prefixlen: int,
                     gateway: str | None) -> None:
    """Inside the container's namespace: give the interface its address, bring it and
    ``lo`` up, and route everything else through the gateway."""
    with Netlink(netns_pid=pid) as ns:
        index = ns.index_of(ifname)
        ns.add_address(index, address, prefixlen)
        ns.set_link(index, up=True)
        bring_up_loopback(ns)
        if gateway:
            ns.add_default_route(gateway, index)


def bring_up_loopback(ns: Netlink) -> None:
    """A new network namespace has only ``lo``, and it is down: even 127.0.0.1 does not
    work until it is brought up (the runtime does it too; doing it again is harmless)."""
    ns.set_link(ns.index_of("lo"), up=True)


def loopback_up(pid: int) -> None:
    """For ``--network none``: the namespace keeps only ``lo``, up."""
    with Netlink(netns_pid=pid) as ns:
        bring_up_loopback(ns)


def remove(container_id: str) -> None:
    """Delete the host end (and so the pair) if it still exists."""
    names = [n for n in (host_name(container_id), peer_name(container_id))
             if os.path.exists(f"/sys/class/net/{n}")]
    if not names:
        return
    with Netlink() as nl:
        for name in names:
            try:
                nl.delete_link(nl.index_of(name))
            except OSError as e:
                if e.errno != errno.ENODEV:
                    raise
