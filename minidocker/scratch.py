"""Scratch space in ``$ROOT/tmp``, owned by the command that made it.

Every file or directory a command writes before it is complete (a blob being
downloaded, a layer being extracted, an archive being spooled, a layer or container
being deleted) starts its life in ``$ROOT/tmp``, on the same filesystem as the store, so
that it can be ``rename``\\ d into place in one atomic step. A command that is killed
(``kill -9``, the OOM killer, a closed terminal, a power cut) never gets to the rename
nor to its clean-up, and leaves the scratch behind: without an owner, a killed pull of a
1 GB layer would leave 1 GB on disk each time.

So a scratch name says who owns it::

    layer-4242-987654-k3j2x9a1
    ^kind ^pid ^start ^random (tempfile)

``pid`` and ``start`` are the owner's identity (:mod:`minidocker.kernel.processes`: the
pid and the process's start time, which together never name two processes). A command
that makes scratch first sweeps what *dead* owners left (:func:`sweep`, once per
process); ``system check`` reports such leftovers and ``--repair`` removes them. What a
live command owns is never touched, however old it is (a debootstrap may take minutes).

Scratch directories may have a mount inside (``export`` mounts a read-only overlay in
one): a sweep unmounts those before it deletes anything, so that deleting never reaches
through a mount into the files it shows.

The temporary files of :func:`minidocker.paths.write_atomic` live beside their target
instead (``.tmp-<pid>-<start>-…``, :func:`minidocker.paths.owner_tag`), and are found
by ``system check``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time

from . import paths
from .crashpoint import reached
from .kernel import mounts, processes

#: What a command left in ``$ROOT/tmp`` and that has no owner in its name (made by an
#: older minidocker, or by hand) is removed once it is older than this.
UNOWNED_GRACE = 24 * 3600

_OWNED = re.compile(r"^\.?(?P<kind>[a-z][a-z-]*?)-(?P<pid>\d+)-(?P<start>\d+)-")
_LEGACY = re.compile(r"^(?P<kind>[a-z][a-z-]*?)-(?P<pid>\d+)-(?!\d+-)")

_swept: set[str] = set()


def prefix(kind: str) -> str:
    """The name prefix of this process's scratch of ``kind``: ``layer-<pid>-<start>-``."""
    return f"{kind}-{paths.owner_tag()}-"


def owner(name: str) -> dict | None:
    """The owner a scratch name records, as a :func:`~minidocker.kernel.processes.identity`
    (``PidStart`` None for an older, pid-only name), or None when it names none."""
    m = _OWNED.match(name)
    if m:
        return {"Pid": int(m["pid"]), "PidStart": int(m["start"])}
    m = _LEGACY.match(name)
    if m:
        return {"Pid": int(m["pid"]), "PidStart": None}
    return None


def is_stale(path: str, now: float | None = None) -> bool:
    """Is the scratch at ``path`` a dead command's leftover? Owned: its owner is gone.
    A pid-only name whose pid is alive (maybe reused) and a name without an owner: when
    older than :data:`UNOWNED_GRACE`."""
    who = owner(os.path.basename(path))
    if who is not None and who["PidStart"] is not None:
        return not processes.owner_alive(who)
    if who is not None and not processes.owner_alive(who):
        return True
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return max(st.st_mtime, st.st_ctime) < (now or time.time()) - UNOWNED_GRACE


# --------------------------------------------------------------------------- making
def tmp_dir(root: str) -> str:
    path = os.path.join(root, "tmp")
    os.makedirs(path, exist_ok=True)
    return path


def mkdtemp(root: str, kind: str) -> str:
    """A new scratch directory in ``$ROOT/tmp``, owned by this process."""
    directory = tmp_dir(root)
    sweep_once(root)
    return tempfile.mkdtemp(dir=directory, prefix=prefix(kind))


def mkstemp(root: str, kind: str) -> tuple[int, str]:
    """A new scratch file in ``$ROOT/tmp``, owned by this process: ``(fd, path)``."""
    directory = tmp_dir(root)
    sweep_once(root)
    return tempfile.mkstemp(dir=directory, prefix=prefix(kind))


def discard(root: str, path: str, kind: str = "deleted") -> None:
    """Delete the directory ``path`` (a container's, a volume's, a layer's) so that no
    one ever sees it half-deleted: first ``rename`` it into owned scratch (one atomic
    step: it is there whole, or gone), then delete the scratch. If this process is
    killed meanwhile, what is left is scratch of a dead owner, which the next sweep
    removes."""
    doomed = mkdtemp(root, kind)
    try:
        os.rename(path, os.path.join(doomed, "x"))
    except FileNotFoundError:
        pass
    except BaseException:
        os.rmdir(doomed)
        raise
    reached("discarding")
    remove_tree(doomed)


# --------------------------------------------------------------------------- sweeping
def stale_entries(root: str) -> list[str]:
    """Paths in ``$ROOT/tmp`` whose owner is dead (see :func:`is_stale`)."""
    directory = os.path.join(root, "tmp")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    now = time.time()
    return sorted(p for p in (os.path.join(directory, n) for n in names) if is_stale(p, now))


def sweep(root: str) -> list[tuple[str, int]]:
    """Remove what dead owners left in ``$ROOT/tmp``; returns ``(path, bytes)`` each."""
    removed = []
    for path in stale_entries(root):
        size = disk_usage(path)
        remove_tree(path)
        if not os.path.lexists(path):
            removed.append((path, size))
    return removed


def sweep_once(root: str) -> None:
    """:func:`sweep`, at most once per process and data root (a command that makes
    scratch cleans up after the dead first; the sweep costs one ``listdir``)."""
    key = os.path.abspath(root)
    if key in _swept:
        return
    _swept.add(key)
    try:
        sweep(root)
    except OSError:
        pass   # another command sweeping at the same time; the next sweep finishes


def remove_tree(path: str) -> None:
    """Delete a file or a directory tree, unmounting first whatever is mounted in it
    (deepest first, lazily), so that deleting stays on this side of every mount."""
    if os.path.isdir(path) and not os.path.islink(path):
        for point in mounts_under(path):
            try:
                mounts.umount(point, lazy=True)
            except OSError:
                pass
        if mounts_under(path):
            return    # still mounted: leave it, rather than delete through a mount
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    top = os.path.realpath(path)
    found = [p for p in mounts.mountpoints() if p == top or p.startswith(top + "/")]
    return sorted(found, key=len, reverse=True)


def disk_usage(path: str) -> int:
    """Bytes of the files under ``path`` (each inode once; not following symlinks)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
