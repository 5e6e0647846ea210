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
    """Write the files bind-mounted over /etc/hostname, /etc/hosts and /etc/resolv.conf."""
    with open(os.path.join(c.dir, "hostname"), "w") as f:
        f.write(hostname + "\n")
    write_hosts(c, [], extra_hosts)
    nameservers = []
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    # A resolver on the host's loopback (systemd-resolved) is unreachable from a container.
    kept = [l for l in lines if not (l.startswith("nameserver") and
                                     (l.split()[1:2] or [""])[0].startswith(("127.", "::1")))]
    nameservers = [l for l in kept if l.startswith("nameserver")]
    if not nameservers:
        kept += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    with open(os.path.join(c.dir, "resolv.conf"), "w") as f:
        f.write("\n".join(kept) + "\n")


def write_hosts(c, own: list[tuple[str, str]], extra: list[tuple[str, str]] = ()) -> None:
    """(Re)write the container's /etc/hosts *in place*: it is bind-mounted, and a rename
    would leave the container looking at the old inode."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters"]
    lines += [f"{ip}\t{names}" for ip, names in list(extra) + list(own)]
    with open(os.path.join(c.dir, "hosts"), "w") as f:
        f.write("\n".join(lines) + "\n")
