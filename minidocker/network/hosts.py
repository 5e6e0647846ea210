"""A container's own lines in its ``/etc/hosts``, kept up to date while it runs.

Each container has its own hosts file (``$ROOT/containers/<id>/hosts``), bind-mounted
onto ``/etc/hosts`` inside. The engine writes it at start (engine/etc_files.py):
``localhost``, the container's addresses under its hostname, and on the default bridge
the lines of its legacy links (engine/links.py). Its peers on a user-defined network
are not there: the network's DNS server answers their names (network/dns.py), as
Docker's embedded DNS does. What changes while it runs is its own addresses: ``network
connect`` adds the new one (:func:`add_entries`), ``disconnect`` takes it away
(:func:`remove_subnet`).

A bind mount pins the *inode* of the file it shows: replacing the file by rename (our
usual atomic write) would leave the container looking at the old one. So these files
are rewritten in place: read, change, write back over the same inode.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os

from .. import paths


def hosts_path(container_id: str) -> str:
    return os.path.join(paths.data_root(), "containers", container_id, "hosts")


def format_entry(ip: str, names) -> str:
    return f"{ip}\t{' '.join(names)}"


def _rewrite(path: str, change) -> bool:
    """Apply ``change(lines) -> lines`` to the file in place, under an flock on it."""
    try:
        f = open(path, "r+")
    except FileNotFoundError:
        return False
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        lines = f.read().splitlines()
        new = change(lines)
        if new != lines:
            f.seek(0)
            f.write("".join(line + "\n" for line in new))
            f.truncate()
    return True


def add_entries(path: str, entries) -> bool:
    """Append ``(ip, [names])`` lines that are not there yet."""
    wanted = [format_entry(ip, names) for ip, names in entries]
    return _rewrite(path, lambda lines: lines + [w for w in wanted if w not in lines])


def remove_subnet(path: str, subnet) -> bool:
    """Drop every entry for an address in ``subnet`` (an ``ipaddress`` network): what a
    container knew of a network it left -- its peers there, and its own address."""

    def inside(line):
        try:
            return ipaddress.ip_address(line.split()[0]) in subnet
        except (ValueError, IndexError):
            return False

    def change(lines):
        return [line for line in lines if line.lstrip().startswith("#") or not inside(line)]
    return _rewrite(path, change)
