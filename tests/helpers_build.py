"""Helpers for the build tests: a data root with busybox, contexts on disk, the CLI,
an image's merged file tree, and the real ``podman build`` to compare with."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

import peers
from conftest import IS_ROOT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "tests", "build_corpus")

#: config fields the conformance tests compare (the issue's list)
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
                 "Labels", "StopSignal")

#: paths that belong to a container, not an image (bind mounts, runtime files); buildah
#: also leaves the ``/run`` it mounts ``.containerenv`` under in a RUN's layer
NOT_IMAGE_PATHS = {"etc/hosts", "etc/hostname", "etc/resolv.conf", "run/.containerenv",
                   "run/secrets", "run"}


@pytest.fixture
def bb(data_root):
    """A private data root (``$MINIDOCKER_ROOT``) holding ``busybox:latest``."""
    if not IS_ROOT:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    from minidocker.image.bootstrap import bootstrap_busybox
    from minidocker.image.store import Store
    try:
        bootstrap_busybox(Store(data_root))
    except Exception as e:  # no busybox-static on this host
        pytest.skip(f"cannot bootstrap busybox: {e}")
    yield data_root
    cleanup_containers(data_root)


def cleanup_containers(root: str) -> None:
    """Remove any container a failed test left (build removes its own)."""
    r = minidocker(root, "ps", "-aq", "--no-trunc")
    ids = r.stdout.split()
    if ids:
        minidocker(root, "rm", "-f", *ids)


def minidocker(root: str, *args, cwd=None, timeout=120, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "MINIDOCKER_ROOT": root, **(env or {})})


def build(root: str, context, *args, ok=True, **kw) -> subprocess.CompletedProcess:
    """``minidocker build ARGS CONTEXT``; with ``ok`` it must succeed."""
    r = minidocker(root, "build", *args, str(context), **kw)
    if ok and r.returncode != 0:
        raise AssertionError(f"build failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def write_context(path, files: dict) -> str:
    """Make a context dir: ``{"Dockerfile": "...", "dir/file": "text" or bytes}``."""
    os.makedirs(path, exist_ok=True)
    for rel, content in files.items():
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    return str(path)


def built_id(output: str) -> str:
    """The short id from ``Successfully built <id>``."""
    for line in output.splitlines():
        if line.startswith("Successfully built "):
            return line.split()[-1]
    raise AssertionError(f"no 'Successfully built' in:\n{output}")


def store(root: str):
    from minidocker.image.store import Store
    return Store(root)


def image_config(root: str, ref: str) -> dict:
    s = store(root)
    return s.image_config(s.resolve(ref))


def image_tree(root: str, ref: str) -> dict:
    """The image's merged file tree: ``{path: (kind, mode, uid, gid, content)}`` where
    content is the bytes of a file or the target of a symlink."""
    from minidocker.build.files import ImageView
    s = store(root)
    view = ImageView(s.layer_dirs(s.resolve(ref)))
    tree = {}

    def walk(rel):
        for name in view.children(rel):
            child = f"{rel}/{name}" if rel else name
            host = view.host_path(child)
            st = os.lstat(host)
            tree[child] = describe(st, host)
            if stat.S_ISDIR(st.st_mode):
                walk(child)
    walk("")
    return tree


def digest(data: bytes) -> str:
    """Contents are compared by digest (and short ones shown as text, for messages)."""
    import hashlib
    return data.decode(errors="replace") if len(data) < 64 else \
        "sha256:" + hashlib.sha256(data).hexdigest()


def describe(st, host=None, data=None, linkname=None):
    mode = stat.S_IMODE(st.st_mode) if hasattr(st, "st_mode") else st
    if hasattr(st, "st_mode"):
        kind = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "link"}.get(
            stat.S_IFMT(st.st_mode), "other")
        if kind == "file":
            with open(host, "rb") as f:
                data = digest(f.read())
        elif kind == "link":
            data = os.readlink(host).encode()
        return (kind, oct(mode), st.st_uid, st.st_gid, data)
    raise TypeError


# --------------------------------------------------------------------------- podman
class Podman(peers.Podman):
    """The real ``podman build`` (buildah) with a private vfs store (:mod:`peers`),
    holding ``localhost/busybox``."""

    def __init__(self, busybox_rootfs: str):
        peers.need("podman")
        super().__init__(storage="vfs", prefix="mdbuild-")
        os.chmod(busybox_rootfs, 0o755)   # a temp dir is 0700: the image's / would be too
        try:
            # the same config as minidocker's bootstrapped busybox
            self.import_rootfs(busybox_rootfs, "localhost/busybox", changes=(
                'CMD ["sh"]', "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))
        except BaseException:
            self.cleanup()
            raise

    def run(self, *args, input=None, check=True, timeout=300):
        return super().run(*args, input=input, check=check, timeout=timeout, text=False)

    def build(self, context: str, tag: str, *args):
        self.run("build", "--pull=never", "--isolation", "chroot", "-t", tag, *args, context)

    def config(self, tag: str) -> dict:
        out = self.run("image", "inspect", tag, "--format", "{{json .Config}}").stdout
        return json.loads(out)

    def tree(self, tag: str) -> dict:
        cid = self.run("create", tag, "true").stdout.decode().strip()
        try:
            data = self.run("export", cid).stdout
        finally:
            self.run("rm", "-f", cid, check=False)
        tree = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                name = m.name.lstrip("./").rstrip("/")
                if not name:
                    continue
                if m.isdir():
                    entry = ("dir", oct(m.mode & 0o7777), m.uid, m.gid, None)
                elif m.isreg() or m.islnk():
                    content = digest(tar.extractfile(m).read()) if m.isreg() else \
                        tree.get(m.linkname.lstrip("./"), (None,) * 5)[4]
                    entry = ("file", oct(m.mode & 0o7777), m.uid, m.gid, content)
                elif m.issym():
                    entry = ("link", oct(m.mode & 0o7777), m.uid, m.gid, m.linkname.encode())
                else:
                    entry = ("other", oct(m.mode & 0o7777), m.uid, m.gid, None)
                tree[name] = entry
        return tree

    def close(self):
        self.cleanup()


def comparable_tree(tree: dict) -> dict:
    """Drop what belongs to a container rather than the image; directories' link-count
    dependent fields are not in the tuple anyway."""
    return {k: (v if v[0] != "link" else ("link", None, v[2], v[3], v[4]))
            for k, v in tree.items()
            if k not in NOT_IMAGE_PATHS and not k.startswith(("dev/", "proc/", "sys/", "run/"))}


def comparable_config(config: dict) -> dict:
    out = {}
    for field in CONFIG_FIELDS:
        value = config.get(field)
        if field == "Labels" and value:
            value = {k: v for k, v in value.items() if not k.startswith("io.buildah.")}
        out[field] = value or None
    return out
