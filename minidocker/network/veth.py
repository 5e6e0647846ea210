"""A veth pair: the virtual cable from a container's network namespace to the bridge.

A veth pair is two Ethernet interfaces joined back to back: what goes in one comes out
of the other. One end stays on the host and is plugged into the bridge; the other is
moved into the container's network namespace and renamed ``eth0``. By hand::

    ip link add veth1a2b3c4 type veth peer name tmp1a2b3c4
    ip link set veth1a2b3c4 master minidocker0 up
    ip link set tmp1a2b3c4 netns $PID               # the container's PID 1
    nsenter -t $PID -n ip link set tmp1a2b3c4 name eth0
    nsenter -t $PID -n ip addr add 172.17.0.2/16 dev eth0
    nsenter -t $PID -n ip link set eth0 up
    nsenter -t $PID -n ip link set lo up
    nsenter -t $PID -n ip route add default via 172.17.0.1

The host end's name is derived from the container id, so whatever is left of a crashed
container can be found again. A container connected to more networks (``network
connect``) has one pair per network: ``eth1``, ``eth2``... inside, and host ends named
``veth<8 hex of the id>x01``, ``x02``... (the ``x`` is no hex digit: no clash with
another container's first pair). When the container's namespace dies (its last process
exits), the kernel destroys the inner end, and with it the whole pair.
"""

from __future__ import annotations

import errno
import os


def host_name(container_id: str, index: int = 0) -> str:
    """The host end of the pair for the container's ``eth<index>``."""
    if index == 0:
        return "veth" + container_id[:11]   # 15 characters: the kernel's IFNAMSIZ limit
    return f"veth{container_id[:8]}x{index:02d}"


def peer_name(container_id: str, index: int = 0) -> str:
    if index == 0:
        return "tmp" + container_id[:11]
    return f"tmp{container_id[:8]}x{index:02d}"


def interface_index(ifname: str) -> int:
    """``eth2`` -> 2."""
    return int(ifname.removeprefix("eth") or 0)


def names_left(container_id: str, index: int | None = None) -> list[str]:
    """The interfaces of this container's pairs still in the host's namespace (all of
    them, or those of ``eth<index>``)."""
    if index is not None:
        wanted = (host_name(container_id, index), peer_name(container_id, index))
        return [n for n in wanted if os.path.exists(f"/sys/class/net/{n}")]
    extra = (f"veth{container_id[:8]}x", f"tmp{container_id[:8]}x")
    try:
        present = os.listdir("/sys/class/net")
    except FileNotFoundError:
        return []
    return [n for n in present
            if n in (host_name(container_id), peer_name(container_id)) or n.startswith(extra)]


def mac_for(ip: str) -> str:
    """Docker's MAC rule: 02:42 and then the four bytes of the IPv4 address.
    (02: a locally administered unicast address, which no NIC vendor uses.)"""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def netns_of(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


def plug(container_id: str, pid: int, bridge: str, address: str, prefixlen: int,
         gateway: str | None, ifname: str = "eth0") -> str:
    """Connect the network namespace of process ``pid`` to ``bridge`` as ``ifname``;
    return the host end's name. On failure nothing is left behind. Only the first
    interface gets the default route (``gateway``); for the others the kernel's route to
    their subnet is enough."""
    from pyroute2 import IPRoute
    index = interface_index(ifname)
    host_end, peer = host_name(container_id, index), peer_name(container_id, index)
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_end, kind="veth", peer=peer)
        try:
            host_index = ipr.link_lookup(ifname=host_end)[0]
            master = ipr.link_lookup(ifname=bridge)[0]
            ipr.link("set", index=host_index, master=master, state="up")
            peer_index = ipr.link_lookup(ifname=peer)[0]
            # Moving an interface to another namespace: by the pid of any process in it.
            ipr.link("set", index=peer_index, net_ns_pid=pid)
            configure_inside(pid, peer, ifname, address, prefixlen, gateway)
        except BaseException:
            remove(container_id, index)
            raise
    return host_end


def configure_inside(pid: int, peer: str, ifname: str, address: str, prefixlen: int,
                     gateway: str | None) -> None:
    """Inside the container's namespace: name the interface, give it its address and MAC,
    bring it and ``lo`` up (a new namespace's ``lo`` is down: even 127.0.0.1 fails), and
    route everything else through the gateway. (pyroute2 opens its netlink socket inside
    the namespace for us.)"""
    from pyroute2 import IPRoute
    with IPRoute(netns=netns_of(pid)) as ns:
        index = ns.link_lookup(ifname=peer)[0]
        ns.link("set", index=index, ifname=ifname, address=mac_for(address))
        ns.addr("add", index=index, address=address, prefixlen=prefixlen)
        ns.link("set", index=index, state="up")
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        if gateway:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)


def remove(container_id: str, index: int | None = None) -> None:
    """Delete the host end (and so the pair) if it still exists: of ``eth<index>``, or
    of every interface of the container."""
    names = names_left(container_id, index)
    if not names:
        return
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        for name in names:
            for index in ipr.link_lookup(ifname=name):
                try:
                    ipr.link("del", index=index)
                except Exception as e:
                    if getattr(e, "code", None) != errno.ENODEV:
                        raise
