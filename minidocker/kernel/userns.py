"""User namespaces: being root inside without being root outside.

A new user namespace starts with no id mapping, so the kernel shows every id as the
"overflow" id 65534 (``nobody``/``nogroup``), as on the slide. Writing
``/proc/PID/uid_map`` (lines of ``INSIDE OUTSIDE COUNT``) says which outside ids the
inside ids stand for. The kernel's rules for who may write it:

* the writer must be in the namespace's parent (or the namespace itself) and hold
  ``CAP_SETUID`` over it, or
* an unprivileged writer may map exactly one id: its own effective uid (that is the
  slide's ``echo 0 1000 1 > /proc/PID/uid_map``);
* each map may be written only once;
* before an unprivileged process may write ``gid_map`` it must write ``deny`` to
  ``/proc/PID/setgroups``, so that nobody can use the mapping to drop a supplementary
  group that was denying them access.
"""

from __future__ import annotations

import os


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise OSError(e.errno, f"write {text.strip()!r} to {path}: {os.strerror(e.errno)}") from None
    finally:
        os.close(fd)


def format_map(entries) -> str:
    """``[(inside, outside, count), ...]`` -> the text the kernel expects."""
    return "".join(f"{inside} {outside} {count}\n" for inside, outside, count in entries)


def deny_setgroups(pid: int | str = "self") -> None:
    """Write ``deny`` to ``/proc/PID/setgroups`` (needed before an unprivileged gid_map)."""
    _write(f"/proc/{pid}/setgroups", "deny")


def write_uid_map(pid: int | str, entries) -> None:
    """Write ``/proc/PID/uid_map`` from ``[(inside, outside, count), ...]``."""
    _write(f"/proc/{pid}/uid_map", format_map(entries))


def write_gid_map(pid: int | str, entries, deny_groups: bool = True) -> None:
    """Write ``/proc/PID/gid_map``, first denying setgroups unless told not to."""
    if deny_groups:
        deny_setgroups(pid)
    _write(f"/proc/{pid}/gid_map", format_map(entries))


def map_root_to(pid: int | str, uid: int, gid: int) -> None:
    """Map root inside ``pid``'s user namespace to ``uid``/``gid`` outside (one id each):
    what ``unshare --map-root-user`` does."""
    write_uid_map(pid, [(0, uid, 1)])
    write_gid_map(pid, [(0, gid, 1)])


def read_map(pid: int | str = "self", kind: str = "uid") -> list[tuple[int, int, int]]:
    with open(f"/proc/{pid}/{kind}_map") as f:
        return [tuple(int(x) for x in line.split()) for line in f if line.strip()]
