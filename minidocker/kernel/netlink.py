"""rtnetlink: how ``ip link``, ``ip addr`` and ``ip route`` talk to the kernel.

Network interfaces, addresses and routes are changed by sending *messages* over a
netlink socket (``socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)``), see rtnetlink(7).
Every message is a 16-byte header (length, type such as ``RTM_NEWLINK``, flags, sequence
number, port id), a fixed struct for its kind (``ifinfomsg`` for a link, ``ifaddrmsg``
for an address, ``rtmsg`` for a route), then *attributes*: (length, type, value) records
padded to 4 bytes, which may nest (a veth's peer is an attribute inside an attribute)::

    ip link add veth1 type veth peer name eth0 netns 1234
      = RTM_NEWLINK  ifinfomsg{}  IFLA_IFNAME "veth1"
                     IFLA_LINKINFO{ IFLA_INFO_KIND "veth"
                                    IFLA_INFO_DATA{ VETH_INFO_PEER{ ifinfomsg{}
                                                      IFLA_IFNAME "eth0"
                                                      IFLA_NET_NS_PID 1234 }}}

With ``NLM_F_ACK`` the kernel answers each request with an ``NLMSG_ERROR`` message whose
error code is 0 on success or ``-errno``. A netlink socket acts in the network namespace
it was *created* in: :class:`Netlink` with ``netns_pid`` makes its socket inside the
namespace of that process (the way ``ip netns exec`` or ``nsenter -n`` would) and then
returns, so one process can configure a container's interfaces from the host.

This is what the engine needs from iproute2, in ~200 lines of the standard library
(pyroute2 does the same and much more, but takes a quarter of a second to import).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

from . import syscalls

NETLINK_ROUTE = 0

# message types (<linux/rtnetlink.h>, <linux/netlink.h>)
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

# header flags
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200     # fail with EEXIST if it exists
NLM_F_CREATE = 0x400   # create if missing

# link attributes (<linux/if_link.h>)
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFF_UP = 0x1

# address and route attributes (<linux/if_addr.h>, <linux/rtnetlink.h>)
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3        # "installed by the admin" (what `ip route add` uses)
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

_HEADER = struct.Struct("=IHHII")      # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")     # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")      # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")   # rtmsg: family, dst_len, src_len, tos, table,
#                                        protocol, scope, type, flags


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, value: bytes) -> bytes:
    """One attribute: 4-byte header (length, type), the value, padding to 4 bytes."""
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (_align(length) - length)


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")   # strings are NUL-terminated


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(b, 16) for b in mac.split(":"))


class Netlink:
    """A NETLINK_ROUTE socket, in our network namespace or in that of ``netns_pid``."""

    def __init__(self, netns_pid: int | None = None):
        self.seq = 0
        if netns_pid is None:
            self.sock = self._open()
            return
        # setns() moves only the calling thread: make the socket over there, come back.
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(target, syscalls.CLONE_NEWNET)
            try:
                self.sock = self._open()
            finally:
                syscalls.setns(own, syscalls.CLONE_NEWNET)
        finally:
            os.close(own)
            os.close(target)

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        sock.bind((0, 0))   # port id 0: the kernel assigns one
        return sock

    def __enter__(self) -> "Netlink":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def request(self, msg_type: int, body: bytes, flags: int = 0, what: str = "") -> list[bytes]:
        """Send one request and wait for the kernel's acknowledgement; returns the
        bodies of the messages that came before it (the answer to a ``GET``). A refusal
        becomes ``OSError(errno)`` naming ``what`` was asked."""
        self.seq += 1
        header = _HEADER.pack(_HEADER.size + len(body), msg_type,
                              flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
        self.sock.send(header + body)
        replies = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + length]
                offset += _align(length)
                if seq != self.seq:
                    continue
                if kind == NLMSG_ERROR:
                    error = struct.unpack_from("=i", payload)[0]
                    if error:
                        raise OSError(-error, f"{os.strerror(-error)}: {what or msg_type}")
                    return replies
                if kind == NLMSG_DONE:
                    return replies
                replies.append(payload)

    # ------------------------------------------------------------------ links
    def index_of(self, name: str) -> int:
        """The index of interface ``name`` in this socket's namespace (``ip link show``)."""
        reply = self.request(RTM_GETLINK, ifinfo() + attr_str(IFLA_IFNAME, name),
                             what=f"ip link show {name}")
        return _IFINFO.unpack_from(reply[0])[2]

    def add_bridge(self, name: str) -> None:
        """``ip link add NAME type bridge`` (EEXIST if there is one)."""
        linkinfo = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, ifinfo() + attr_str(IFLA_IFNAME, name) + linkinfo,
                     NLM_F_CREATE | NLM_F_EXCL, f"ip link add {name} type bridge")

    def add_veth(self, name: str, peer: str, peer_netns_pid: int | None = None,
                 peer_mac: str | None = None) -> None:
        """``ip link add NAME type veth peer name PEER [address MAC] [netns PID]``: the
        peer end is born in the namespace of ``peer_netns_pid``, with its final name."""
        peer_attrs = attr_str(IFLA_IFNAME, peer)
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        if peer_netns_pid is not None:
            peer_attrs += attr_u32(IFLA_NET_NS_PID, peer_netns_pid)
        linkinfo = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth") +
                        attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs)))
        self.request(RTM_NEWLINK, ifinfo() + attr_str(IFLA_IFNAME, name) + linkinfo,
                     NLM_F_CREATE | NLM_F_EXCL, f"ip link add {name} type veth peer name {peer}")

    def set_link(self, index: int, up: bool | None = None, master: int | None = None) -> None:
        """``ip link set dev INDEX [master BRIDGE] [up|down]``: plug into a bridge (by its
        index), switch ``IFF_UP`` (``change`` says which flag bits to touch)."""
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        attrs = attr_u32(IFLA_MASTER, master) if master is not None else b""
        self.request(RTM_NEWLINK, ifinfo(index, flags, change) + attrs,
                     what=f"ip link set {index}")

    def delete_link(self, index: int) -> None:
        """``ip link del``: for a veth, the kernel removes both ends."""
        self.request(RTM_DELLINK, ifinfo(index), what=f"ip link del {index}")

    # ------------------------------------------------------------------ addresses, routes
    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        """``ip addr add ADDRESS/PREFIXLEN dev INDEX`` (IPv4; EEXIST if it is there). The
        kernel adds the route to the subnet (``proto kernel scope link``) by itself."""
        packed = ipaddress.IPv4Address(address).packed
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL,
                     f"ip addr add {address}/{prefixlen} dev {index}")

    def add_default_route(self, gateway: str, index: int) -> None:
        """``ip route add default via GATEWAY dev INDEX`` (0.0.0.0/0 in the main table)."""
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                           RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed) + attr_u32(RTA_OIF, index)
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL,
                     f"ip route add default via {gateway}")
