"""A container's ``/etc``: the files the engine writes for it, and those it reads.

Docker does not let the image decide a container's name and address: it writes
``hostname``, ``hosts`` and ``resolv.conf`` in the container's directory and the
runtime bind-mounts them over ``/etc/hostname``, ``/etc/hosts`` and
``/etc/resolv.conf`` (their mount points are in the init layer, :mod:`.overlay`).
And ``-u USER[:GROUP]`` means what the *image's* ``/etc/passwd`` and ``/etc/group``
say, not the host's: :func:`lookup_user` reads them.
"""

from __future__ import annotations

import os

from .. import resolvconf
from ..errors import MinidockerError


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def lookup_user(rootfs: str, spec: str) -> tuple[int, int, list[int], str]:
    """Resolve ``-u USER[:GROUP]`` against the *container's* /etc/passwd and /etc/group.

    Returns (uid, gid, supplementary gids, home). Numeric ids need not exist in the files,
    as in Docker; names must.
    """
    user, _, group = (spec or "0").partition(":")
    passwd = _read_db(os.path.join(rootfs, "etc/passwd"))
    groups = _read_db(os.path.join(rootfs, "etc/group"))
    entry = next((p for p in passwd if len(p) >= 6 and (p[0] == user or p[2] == user)), None)
    if entry:
        uid, gid, home, name = int(entry[2]), int(entry[3]), entry[5], entry[0]
    elif user.isdigit():
        uid, gid, home, name = int(user), 0, "/", None
    else:
        raise MinidockerError(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        g = next((g for g in groups if len(g) >= 3 and (g[0] == group or g[2] == group)), None)
        if g:
            gid = int(g[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise MinidockerError(f"unable to find group {group}: no matching entries in group file")
    extra = sorted({int(g[2]) for g in groups
                    if len(g) >= 4 and name and name in g[3].split(",") and int(g[2]) != gid})
    return uid, gid, extra, home


def etc_files(c, hostname: str, extra_hosts: list[tuple[str, str]] = ()) -> None:
    """Write the files bind-mounted over /etc/hostname, /etc/hosts and /etc/resolv.conf
    (the last from the host's, see :func:`write_resolv_conf`)."""
    with open(os.path.join(c.dir, "hostname"), "w") as f:
        f.write(hostname + "\n")
    write_hosts(c, [], extra_hosts)
    write_resolv_conf(c)


#: Docker's fallback when the host lists no resolver a container can reach.
FALLBACK_NAMESERVERS = ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]


def resolv_conf_lines(dns_servers=()) -> list[str]:
    """A container's /etc/resolv.conf, made from the host's (:mod:`minidocker.resolvconf`).

    * No ``dns_servers`` (the default bridge, ``--network none``): the host's file,
      less the resolvers on the host's loopback (the container's loopback is its own,
      nobody answers there); none left, Docker's fallback, Google's 8.8.8.8 and 8.8.4.4.
    * ``dns_servers`` (the DNS servers of the container's user-defined networks, see
      :mod:`minidocker.network.dns`): those replace the host's resolvers, which they
      forward to; ``options ndots:0`` is added, as Docker adds it for its 127.0.0.11,
      so that a short name (``web``) is asked as it is before any ``search`` domain is
      tried. The host's ``search`` and ``options`` stay.
    """
    lines = resolvconf.read_host()
    if dns_servers:
        kept = [l for l in lines if not l.startswith("nameserver")]
        kept += [f"nameserver {s}" for s in list(dns_servers)[:resolvconf.MAXNS]]
        if not any(l.startswith("options") and "ndots:" in l for l in kept):
            kept.append("options ndots:0")
        return kept
    kept = [l for l in lines if not (l.startswith("nameserver") and
                                     resolvconf.is_loopback((l.split()[1:2] or [""])[0]))]
    if not any(l.startswith("nameserver") for l in kept):
        kept += FALLBACK_NAMESERVERS
    return kept


def write_resolv_conf(c, dns_servers=()) -> None:
    """(Re)write the container's /etc/resolv.conf *in place* (see :func:`write_hosts`):
    at start, and when ``network connect``/``disconnect`` change its DNS servers."""
    with open(os.path.join(c.dir, "resolv.conf"), "w") as f:
        f.write("\n".join(resolv_conf_lines(dns_servers)) + "\n")


def copy_resolv_conf(c, other) -> None:
    """``--network container:X``: the container shares X's network namespace, so it
    asks X's resolvers (on a user-defined network, X's DNS server, which takes it for X),
    as Docker gives it X's resolv.conf."""
    try:
        with open(os.path.join(other.dir, "resolv.conf")) as f:
            text = f.read()
    except FileNotFoundError:
        return
    with open(os.path.join(c.dir, "resolv.conf"), "w") as f:
        f.write(text)


def write_hosts(c, own: list[tuple[str, str]], extra: list[tuple[str, str]] = ()) -> None:
    """(Re)write the container's /etc/hosts *in place*: it is bind-mounted, and a rename
    would leave the container looking at the old inode."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters"]
    lines += [f"{ip}\t{names}" for ip, names in list(extra) + list(own)]
    with open(os.path.join(c.dir, "hosts"), "w") as f:
        f.write("\n".join(lines) + "\n")
