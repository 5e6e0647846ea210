"""Bring ``lo`` up inside a container's network namespace, without pyroute2.

A new network namespace has one interface, ``lo``, and it is *down*: until it is up even
``127.0.0.1`` is unreachable. ``--network none`` containers need nothing else, so this
does it the old way, with two ``ioctl``s on a socket (what ``ifconfig lo up`` does), in a
forked child that first joins the namespace with ``setns(2)`` -- a process can only
configure the namespace it is in, and the parent must stay where it is.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

SIOCGIFFLAGS = 0x8913   # <linux/sockios.h>: get interface flags
SIOCSIFFLAGS = 0x8914   # set interface flags
IFF_UP = 0x1            # <net/if.h>


def _set_up_in_current_namespace(ifname: str = "lo") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # struct ifreq: a 16-byte name, then (here) a short for the flags
        req = struct.pack("16sh", ifname.encode(), 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", ifname.encode(), flags | IFF_UP))


def up(pid: int) -> None:
    """Bring ``lo`` up in the network namespace of process ``pid``."""
    from ..kernel import namespaces
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        child = os.fork()
        if child == 0:
            code = 1
            try:
                namespaces.syscalls.setns(fd, namespaces.FLAGS["net"])
                _set_up_in_current_namespace()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
    finally:
        os.close(fd)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"could not bring lo up in the network namespace of pid {pid}")
