"""``minidocker cp``: copy files between a container and the host, Docker's rules.

``CONTAINER:SRC`` -> host path, or host path -> ``CONTAINER:DEST``; ``-`` for a tar
on stdin or stdout. Where the copy lands follows ``docker cp``:

* the destination is an existing directory: the source goes *into* it, under its own
  name (``SRC/.`` copies the directory's contents instead);
* the destination does not exist: the source is copied *as* it (its parent must exist;
  a destination ending in ``/`` must be an existing directory);
* a directory cannot be copied onto an existing file.

Both directions are tar streams (:mod:`minidocker.engine.cp`), as on the Engine API.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile

import click

from ..errors import InvalidInput, NotFound


def _split(arg: str):
    """``name:/path`` -> (name, "/path"); a host path -> (None, path)."""
    if arg == "-" or arg.startswith(("/", ".")):
        return None, arg
    name, colon, path = arg.partition(":")
    if colon and name and "/" not in name:
        return name, path
    return None, arg


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.argument("src")
@click.argument("dest")
def cp(archive, follow_link, src, dest):
    """Copy files/folders between a container and the local filesystem."""
    from ..engine.containers import resolve
    from ..image.store import Store
    src_ctr, src_path = _split(src)
    dest_ctr, dest_path = _split(dest)
    if src_ctr and dest_ctr:
        raise InvalidInput("copying between containers is not supported")
    if not src_ctr and not dest_ctr:
        raise InvalidInput("must specify at least one container source")
    store = Store()
    if src_ctr:
        c = resolve(src_ctr)
        _copy_from(c, src_path or "/", dest_path, store, archive, follow_link)
    else:
        c = resolve(dest_ctr)
        _copy_to(c, src_path, dest_path or "/", store, archive, follow_link)


def _copy_from(c, src: str, dest: str, store, archive: bool, follow: bool) -> None:
    from ..engine import cp as engine_cp
    if follow and not src.endswith("/"):
        info = engine_cp.stat_path(c, src, store)
        if info["linkTarget"]:
            src = info["linkTarget"]
    if dest == "-":
        engine_cp.copy_out(c, src, store, sys.stdout.buffer)
        return
    info = engine_cp.stat_path(c, src.rstrip("/") if src.endswith("/.") else src, store)
    src_is_dir = bool(info["mode"] & engine_cp.GO_MODE_DIR)
    contents = src.endswith("/.")
    if os.path.isdir(dest):
        target_dir, rename = dest, None
    else:
        if dest.endswith("/"):
            raise NotFound(f"destination directory {dest} must exist")
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise NotFound(f"no such directory: {parent}")
        if os.path.exists(dest) and src_is_dir:
            raise InvalidInput("cannot copy a directory to a file")
        target_dir, rename = parent, os.path.basename(os.path.abspath(dest))
        if contents:
            os.makedirs(dest, exist_ok=True)
            target_dir, rename = dest, None
    with tempfile.TemporaryFile() as tmp:
        engine_cp.copy_out(c, src, store, tmp)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp, mode="r:") as tar:
            members = tar.getmembers()
            top = members[0].name if members else ""
            for m in members:
                if rename is not None and top not in (".", ""):
                    m.name = rename + m.name[len(top):]
                if not archive:
                    m.uid, m.gid = os.getuid(), os.getgid()
                    m.uname = m.gname = ""
            # the "tar" filter: nothing is written outside the target directory (names
            # and paths through links are checked); absolute links are kept, as Docker
            tar.extractall(target_dir, members=members, numeric_owner=True, filter="tar")


def _copy_to(c, src: str, dest: str, store, archive: bool, follow: bool) -> None:
    from ..engine import cp as engine_cp
    if src == "-":
        engine_cp.archive_in(c, dest, sys.stdin.buffer, store)
        return
    if not os.path.lexists(src.rstrip("/.") if src.endswith("/.") else src):
        raise NotFound(f"lstat {os.path.abspath(src)}: no such file or directory")
    contents = src.endswith("/.")
    path = os.path.realpath(src) if follow else src.rstrip("/") if not contents else src[:-2]
    src_is_dir = os.path.isdir(path) and not os.path.islink(path)
    try:
        info = engine_cp.stat_path(c, dest, store)
        dest_is_dir = bool(info["mode"] & engine_cp.GO_MODE_DIR)
        exists = True
    except NotFound:
        exists = dest_is_dir = False
    if exists and dest_is_dir:
        target, arcname = dest, ("." if contents else os.path.basename(os.path.abspath(path)))
    else:
        if dest.endswith("/"):
            raise NotFound(f"destination directory {dest} must exist")
        if exists and src_is_dir:
            raise InvalidInput("cannot copy a directory to a file")
        target, arcname = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest.rstrip("/"))
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            tar.add(path, arcname=arcname)
        tmp.seek(0)
        engine_cp.archive_in(c, target, tmp, store, copy_uid_gid=archive)
