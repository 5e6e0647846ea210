"""The host's resolver configuration, ``/etc/resolv.conf`` (resolv.conf(5)).

Two readers share it: the engine, which writes each container's ``/etc/resolv.conf``
from it (engine/etc_files.py), and the DNS server of a user-defined network, which
forwards the names it does not know to the resolvers listed here
(network/dns_server.py). Both read the file when they need it, so a host whose
resolvers change (DHCP, a VPN) is followed.

``$MINIDOCKER_RESOLV_CONF`` names another file to read instead: the test suite points
it at a file without resolvers (or with a fake one on 127.0.0.1), so that no query from
a test ever leaves the machine; a learner can use it to try a resolver of their own.

The lines that matter (the rest is kept as it is)::

    nameserver 10.0.0.53        one resolver per line, tried in order (at most 3 count)
    search corp.example         domains tried after short names
    options ndots:1 timeout:2   the resolver's knobs
"""

from __future__ import annotations

import ipaddress
import os

ENV = "MINIDOCKER_RESOLV_CONF"
HOST_FILE = "/etc/resolv.conf"

#: glibc reads at most three ``nameserver`` lines (``MAXNS`` in resolv.h).
MAXNS = 3


def host_path() -> str:
    """The file that stands for the host's resolver configuration."""
    return os.environ.get(ENV) or HOST_FILE


def read_host() -> list[str]:
    """The host file's lines (none when it does not exist)."""
    try:
        with open(host_path()) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def nameservers(lines: list[str]) -> list[str]:
    """The addresses of the ``nameserver`` lines, in order."""
    found = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return found


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 or ::1: a resolver on the host's own loopback (systemd-resolved's
    127.0.0.53, dnsmasq's 127.0.1.1). A container has a loopback of its own, so it
    cannot reach these; a process in the host's network namespace can."""
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
