"""Bring a network interface up with one ``ioctl``, without iproute2 or netlink.

``SIOCGIFFLAGS``/``SIOCSIFFLAGS`` read and write an interface's flags through any socket;
``IFF_UP`` is what ``ip link set lo up`` sets. A new network namespace starts with ``lo``
down (the "Network Namespace" slide): even 127.0.0.1 does not work until it is up.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from .namespaces import enter

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def set_link_up(name: str = "lo") -> None:
    """Set ``IFF_UP`` on interface ``name`` in the caller's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


def set_link_up_in(pid: int, name: str = "lo") -> None:
    """Bring ``name`` up inside the network namespace of process ``pid``.

    ``setns`` changes the namespace of the calling *thread*, so we do it in a short-lived
    forked child and leave the caller where it was.
    """
    child = os.fork()
    if child == 0:
        code = 0
        try:
            enter(pid, ["net"])
            set_link_up(name)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"could not bring {name} up in the network namespace of pid {pid}")
