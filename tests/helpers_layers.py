"""Helpers for the layer tests (diff, commit, save, load): real overlay mounts and tars."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import tarfile

from minidocker.kernel import mounts


@contextlib.contextmanager
def overlay(tmp_path, lowers_bottom_first):
    """Mount an overlay of ``lowers_bottom_first`` (image order) with a fresh upper dir.

    Yields ``(merged, upper)``; the mount is gone when the block ends, whatever happens.
    """
    upper, work, merged = (os.path.join(str(tmp_path), d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d)
    mounts.mount_overlay(list(reversed(lowers_bottom_first)), upper, work, merged)
    try:
        yield merged, upper
    finally:
        mounts.umount(merged)


def tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def tar_names(data: bytes) -> list[str]:
    return [m.name for m in tar_members(data)]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree(root: str) -> dict[str, tuple]:
    """A comparable picture of a directory tree: path -> (type, mode, uid, gid, content or
    link target). mtimes left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if os.path.islink(full):
                what = ("l", os.readlink(full))
            elif os.path.isdir(full):
                what = ("d", None)
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    what = ("f", hashlib.sha256(f.read()).hexdigest())
            else:
                what = ("o", st.st_rdev)
            out[rel] = (what, st.st_mode & 0o7777, st.st_uid, st.st_gid)
    return out


def make_lower(path: str, files: dict[str, str | None]) -> str:
    """Make a directory holding ``files`` (path -> content; None makes a directory)."""
    os.makedirs(path, exist_ok=True)
    for rel, content in files.items():
        full = os.path.join(path, rel)
        if content is None:
            os.makedirs(full, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(content)
    return path


def make_image(store, rootfs: str, tag: str | None = "busybox:latest", cmd=("sh",),
               tmp_dir: str | None = None) -> str:
    """An image in ``store`` whose one layer is the directory ``rootfs``; returns its id."""
    import tempfile
    from minidocker.image.changes import layer_tar_from_upperdir
    from minidocker.image.store import new_config
    with tempfile.TemporaryFile(dir=tmp_dir) as layer:
        layer_tar_from_upperdir(rootfs, layer)
        layer.seek(0)
        descriptor = store.add_layer(layer)
    config = new_config(cmd=list(cmd), env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                                  "/usr/bin:/sbin:/bin"],
                        history_by="test: busybox rootfs", diff_ids=[descriptor["diff_id"]],
                        created="2026-01-01T00:00:00Z")
    image_id = store.write_image(config, [descriptor])
    if tag:
        store.tag(image_id, tag)
    return image_id


def store_snapshot(root: str) -> dict[str, tuple]:
    """Every file under a data root (except scratch and locks) with its size and a hash
    of its content, to compare before/after. Empty directories are not state."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in ("tmp", "locks"):
            continue
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            digest = None
            if os.path.isfile(full) and not os.path.islink(full) and st.st_size < (1 << 20):
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_size, digest)
    return out


def minidocker(*args, input=None, timeout=60, env=None, text=True, stdout=None):
    """Run ``python -m minidocker ARGS`` (the data root comes from $MINIDOCKER_ROOT, which
    the ``data_root`` fixture sets). Returns the CompletedProcess."""
    import sys
    kwargs = {"stdout": stdout, "stderr": subprocess.PIPE} if stdout is not None \
        else {"capture_output": True}
    return subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], input=input,
                          timeout=timeout, text=text, env={**os.environ, **(env or {})},
                          **kwargs)


def md_ok(*args, **kw) -> str:
    """``minidocker ARGS``, which must succeed; its stdout."""
    r = minidocker(*args, **kw)
    assert r.returncode == 0, f"minidocker {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def remove_all_containers() -> None:
    ids = minidocker("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        minidocker("rm", "-f", *ids)


def write_tar(path: str, entries: list[tuple[str, bytes | None]], mtime: int = 1700000000):
    """A tar at ``path`` from (name, content) pairs (None content: a directory)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
