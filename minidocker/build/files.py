"""Files for COPY, ADD and WORKDIR: read an image's tree, build a new layer.

A build step that adds files makes a *layer*: a tar of exactly what changed. We build
it the way overlayfs would have recorded the change: in a *staging* directory that plays
the part of a container's upper dir. The new files go there with their final owner,
mode and mtime; every parent directory the image already has is "copied up" with the
image's own metadata (so a COPY into ``/etc`` does not change ``/etc``'s mode); missing
parents are created ``0755``. The staging dir is then written out as an OCI layer tar by
the same code ``commit`` uses (:func:`minidocker.image.changes.layer_tar_from_upperdir`).

The image's own tree is never mounted: :class:`ImageView` reads it straight from the
extracted layer directories, applying overlayfs' lookup rule (top-most layer wins,
whiteouts and opaque directories hide what is below) -- see ``image/changes.py``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile

from ..image import changes, unpack
from ..image.compression import detect_compression
from ..kernel import mounts
from ..errors import InvalidInput



class ImageView:
    """Read-only access to an image's merged file tree, given its layer dirs (bottom first)."""

    def __init__(self, layer_dirs: list[str]):
        self.layers = list(layer_dirs)

    def lstat(self, rel: str) -> os.stat_result | None:
        rel = rel.strip("/")
        if not rel:
            return os.lstat(self.layers[-1]) if self.layers else None
        return changes.lower_lookup(self.layers, rel)

    def host_path(self, rel: str) -> str | None:
        """Where the bytes of image path ``rel`` are: the top-most layer that has it."""
        rel = rel.strip("/")
        if self.lstat(rel) is None:
            return None
        for layer in reversed(self.layers):
            path = os.path.join(layer, rel) if rel else layer
            if os.path.lexists(path) and not unpack.is_whiteout_device(path):
                return path
        return None

    def children(self, rel: str) -> list[str]:
        return sorted(changes.lower_children(self.layers, rel.strip("/")))

    def walk(self, rel: str):
        """Everything below directory ``rel``, parents before children, in name order:
        ``(image path, host path, lstat)`` for each entry."""
        for name in self.children(rel):
            child = posixpath.join(rel, name)
            host = self.host_path(child)
            if host is None:
                continue
            st = os.lstat(host)
            yield child, host, st
            if stat.S_ISDIR(st.st_mode):
                yield from self.walk(child)

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """``path`` with every symlink inside the image followed, as the kernel would
        inside the container (:func:`minidocker.kernel.mounts.resolve_in_root`: absolute
        links are relative to the image's root, and ``..`` never climbs above it).
        Returns an absolute image path; components that do not exist are kept as they are."""
        def readlink(rel: str) -> str | None:
            st = self.lstat(rel)
            return os.readlink(self.host_path(rel)) if st is not None and stat.S_ISLNK(st.st_mode) else None
        try:
            return mounts.resolve_in_root(path, readlink, follow_last)
        except OSError as e:
            raise InvalidInput(e.strerror) from None

    def read_text(self, path: str) -> str | None:
        host = self.host_path(self.resolve(path))
        if host is None or not os.path.isfile(host):
            return None
        with open(host, encoding="utf-8", errors="replace") as f:
            return f.read()


# --------------------------------------------------------------------------- users
def _lookup_db(text: str | None, name: str) -> int | None:
    """The numeric id of ``name`` in an ``/etc/passwd`` or ``/etc/group`` text."""
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name:
            try:
                return int(fields[2])
            except ValueError:
                return None
    return None


def parse_chown(spec: str, image: ImageView) -> tuple[int, int]:
    """``--chown=user[:group]`` -> (uid, gid). Names are looked up in the image's
    ``/etc/passwd`` and ``/etc/group``. Docker's rule: with no group, the group id is
    the *user id* (not the user's primary group)."""
    user, _, group = spec.partition(":")

    def to_id(value: str, db: str, kind: str) -> int:
        if value.isdigit():
            return int(value)
        found = _lookup_db(image.read_text(db), value)
        if found is None:
            raise InvalidInput(f"unable to convert {kind} {value!r} to an id: "
                               f"no such {kind} in {db} of the image")
        return found

    uid = to_id(user, "/etc/passwd", "user")
    gid = to_id(group, "/etc/group", "group") if group else uid
    return uid, gid


def parse_user(spec: str, image: ImageView) -> tuple[int, int]:
    """``USER name[:group]`` -> (uid, gid) as a process would run: a user name gives its
    uid *and its primary group* from ``/etc/passwd``; a numeric uid alone gets gid 0
    unless passwd names it. An unknown name is an error."""
    user, _, group = (spec or "root").partition(":")
    passwd = image.read_text("/etc/passwd") or ""
    uid = gid = None
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) > 3 and (fields[0] == user or (user.isdigit() and fields[2] == user)):
            uid, gid = int(fields[2]), int(fields[3])
            break
    if uid is None:
        if not user.isdigit():
            raise InvalidInput(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = int(user), 0
    if group:
        gid = int(group) if group.isdigit() else _lookup_db(image.read_text("/etc/group"), group)
        if gid is None:
            raise InvalidInput(f"unable to find group {group}: no matching entries in group file")
    return uid, gid


# --------------------------------------------------------------------------- staging
class Staging:
    """A directory that collects one step's new files, laid out like an overlay upper dir."""

    def __init__(self, path: str, image: ImageView):
        self.path = path
        self.image = image
        os.makedirs(path, exist_ok=True)

    def host(self, image_path: str) -> str:
        rel = image_path.strip("/")
        return os.path.join(self.path, rel) if rel else self.path

    def ensure_dir(self, image_path: str, owner: tuple[int, int] = (0, 0)) -> None:
        """Make ``image_path`` a directory in the staging tree, with its parents.

        Each directory the image already has keeps the image's owner, mode and mtime
        (overlay's copy-up does the same); a new one is ``0755`` owned by ``owner``."""
        parts = [p for p in image_path.split("/") if p]
        for i in range(len(parts)):
            rel = "/".join(parts[:i + 1])
            target = os.path.join(self.path, rel)
            if os.path.isdir(target) and not os.path.islink(target):
                continue
            if os.path.lexists(target):
                os.unlink(target)
            existing = self.image.lstat(rel)
            os.mkdir(target)
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                os.chown(target, existing.st_uid, existing.st_gid)
                os.chmod(target, stat.S_IMODE(existing.st_mode))
                os.utime(target, ns=(existing.st_atime_ns, existing.st_mtime_ns))
            else:
                os.chown(target, *owner)
                os.chmod(target, 0o755)

    def set_meta(self, target: str, mode: int, owner: tuple[int, int], mtime_ns: int | None):
        os.lchown(target, *owner)
        if not os.path.islink(target):
            os.chmod(target, mode)
        if mtime_ns is not None:
            os.utime(target, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def clear(self, target: str) -> None:
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)

    def add_file(self, image_path: str, src: str, st: os.stat_result, owner, chmod):
        """Copy one non-directory ``src`` (host path, stat ``st``) to ``image_path``."""
        target = self.host(image_path)
        self.ensure_dir(posixpath.dirname(image_path), owner)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, target, follow_symlinks=True)
        else:
            return  # sockets, fifos, devices in a context are not copied
        mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
        self.set_meta(target, mode, owner, st.st_mtime_ns)

    def add_dir(self, image_path: str, st: os.stat_result, owner, chmod):
        """A directory from the source tree: its mode (or ``--chmod``) and owner."""
        target = self.host(image_path)
        self.ensure_dir(image_path, owner)
        mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
        self.set_meta(target, mode, owner, st.st_mtime_ns)

    def add_bytes(self, image_path: str, data: bytes, mode: int, owner) -> None:
        target = self.host(image_path)
        self.ensure_dir(posixpath.dirname(image_path), owner)
        self.clear(target)
        with open(target, "wb") as f:
            f.write(data)
        self.set_meta(target, mode, owner, None)

    def finish_dir_times(self, image_path: str, mtime_ns: int) -> None:
        target = self.host(image_path)
        os.utime(target, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def is_empty(self) -> bool:
        return not os.listdir(self.path)


# --------------------------------------------------------------------------- tree copies
def copy_host_entries(staging, src_dir, entries, dest, owner, chmod):
    """Copy the listed entries (relative to ``src_dir``, parents before children)."""
    dir_times = []
    for rel in entries:
        full = os.path.join(src_dir, rel)
        st = os.lstat(full)
        image_path = posixpath.join(dest, rel)
        if stat.S_ISDIR(st.st_mode):
            staging.add_dir(image_path, st, owner, chmod)
            dir_times.append((image_path, st.st_mtime_ns))
        else:
            staging.add_file(image_path, full, st, owner, chmod)
    # a directory's mtime changes whenever something is created in it: set them last
    for image_path, mtime_ns in reversed(dir_times):
        staging.finish_dir_times(image_path, mtime_ns)


def copy_image_tree(staging: Staging, view: ImageView, src: str, dest: str, owner, chmod) -> None:
    """Copy the contents of directory ``src`` of another image (``COPY --from``)."""
    dir_times = []
    src = src.strip("/")
    for child, host, st in view.walk(src):
        image_path = posixpath.join(dest, posixpath.relpath(child, src) if src else child)
        if stat.S_ISDIR(st.st_mode):
            staging.add_dir(image_path, st, owner, chmod)
            dir_times.append((image_path, st.st_mtime_ns))
        else:
            staging.add_file(image_path, host, st, owner, chmod)
    for image_path, mtime_ns in reversed(dir_times):
        staging.finish_dir_times(image_path, mtime_ns)


# --------------------------------------------------------------------------- ADD archives
#: The compressions Docker's ADD unpacks (tarfile reads them all; zstd it does not).
ADD_COMPRESSIONS = ("gzip", "bzip2", "xz")


def is_local_archive(path: str) -> bool:
    """Docker's ADD extracts a local file that *is* a tar (plain, gzip, bzip2 or xz),
    recognised by its content, never by its name."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if detect_compression(head) in ADD_COMPRESSIONS:
        try:
            with tarfile.open(path, "r:*") as tar:
                return tar.next() is not None
        except (tarfile.TarError, OSError, EOFError):
            return False
    return len(head) == 512 and head[257:262] == b"ustar"


def extract_archive(staging: Staging, archive: str, dest: str, owner=None) -> None:
    """Unpack a tar into image directory ``dest``, keeping the entries' owners, modes
    and times (as Docker's ADD does). Entries that would leave ``dest`` are refused."""
    staging.ensure_dir(dest)
    dir_times = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = unpack.safe_relative_path(member.name)
            if not rel:
                continue
            image_path = posixpath.join(dest, rel)
            target = staging.host(image_path)
            ids = owner or (member.uid, member.gid)
            staging.ensure_dir(posixpath.dirname(image_path))
            if member.isdir():
                if not os.path.isdir(target):
                    staging.clear(target)
                    os.mkdir(target)
                staging.set_meta(target, member.mode, ids, None)
                dir_times.append((image_path, int(member.mtime * 1e9)))
                continue
            staging.clear(target)
            if member.isreg():
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                link = staging.host(posixpath.join(dest, unpack.safe_relative_path(member.linkname)))
                if not os.path.lexists(link):
                    raise InvalidInput(f"{archive}: hard link {member.name} to a missing entry")
                os.link(link, target)
                continue
            else:
                continue  # devices and fifos are not extracted by a build
            staging.set_meta(target, member.mode, ids, int(member.mtime * 1e9))
    for image_path, mtime_ns in reversed(dir_times):
        staging.finish_dir_times(image_path, mtime_ns)
