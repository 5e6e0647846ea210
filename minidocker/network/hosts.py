"""Name resolution between containers, the simple way: lines in ``/etc/hosts``.

Each container has its own hosts file (``$ROOT/containers/<id>/hosts``), bind-mounted
onto ``/etc/hosts`` inside. Links add the linked container's alias, name and id (see
engine/links.py); on a user-defined network every member gets a line for every other
member, so that ``wget http://web/`` works by container name. (Docker answers those
names from an embedded DNS server at 127.0.0.11; a hosts file needs no server.)

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


def remove_names(path: str, name: str) -> bool:
    """Drop every entry (not comment) that names ``name`` (e.g. a container's short id)."""
    def change(lines):
        return [line for line in lines
                if line.lstrip().startswith("#") or name not in line.split()[1:]]
    return _rewrite(path, change)


def remove_addresses(path: str, addresses) -> bool:
    """Drop every entry (not comment) for one of ``addresses``: a container that left a
    network takes its address there out of its peers' files."""
    gone = set(addresses)

    def change(lines):
        return [line for line in lines
                if line.lstrip().startswith("#") or not line.split() or line.split()[0] not in gone]
    return _rewrite(path, change)


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
