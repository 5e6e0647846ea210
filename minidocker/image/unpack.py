"""Apply a layer tar to a directory, safely, turning OCI whiteouts into overlay ones.

An image layer is a tar of *changes* (OCI image spec, ``layer.md``):

- an ordinary entry adds or replaces a file;
- ``dir/.wh.NAME`` (a *whiteout*) says "``dir/NAME`` of the layers below is deleted";
- ``dir/.wh..wh..opq`` (an *opaque whiteout*) says "hide everything the layers below
  have in ``dir``; only this layer's entries of ``dir`` remain".

minidocker keeps every layer extracted on its own, in ``$ROOT/layers/<diff_id>/``, and
stacks them with overlayfs. overlayfs has its own way to say the same two things
(``Documentation/filesystems/overlayfs.rst``):

- a whiteout is a *character device with device number 0/0* at ``NAME``;
- an opaque directory carries the extended attribute ``trusted.overlay.opaque=y``.

So :func:`apply_layer` writes ``.wh.NAME`` as a 0/0 char device and ``.wh..wh..opq`` as
that xattr. The spec adds: whiteouts only hide what *lower* layers have; a file that
the same layer creates is not hidden by its own whiteout. Since each layer is extracted
into an empty directory of its own, that rule holds by construction.

Safety -- a layer comes from the network or from a stranger's archive, and is
extracted as root. The rules kept here:

- entry names are relative: an absolute name (``/etc/passwd``) or one that climbs
  (``../x``, ``a/../../x``) is refused;
- nothing is ever written *through* a symlink: if a parent directory of an entry is a
  symlink (``evil -> /`` then ``evil/etc/passwd``) the entry is refused. Layer tars
  made from a filesystem diff never need that, and following it is how extraction
  bugs write to the host;
- a hard link must point at a file this same layer already holds (never outside);
- device nodes (char/block) are allowed only under ``dev/`` (where debootstrap puts
  ``/dev/null`` and friends); anywhere else they are refused. (In the OCI tar format
  deletions are ``.wh.`` files, never devices, so a 0/0 device elsewhere is suspect.)
  The runtime's device cgroup decides anyway which devices a container may open;
- the overlay's own xattrs (``trusted.overlay.*``) are never taken from a tar: they
  would let a layer forge whiteouts or redirects;
- a bad or truncated tar raises :class:`InvalidInput`. The caller extracts into a
  fresh temporary directory and renames it into place only on success, so no
  half-made layer is ever visible.

The tar is read as a stream (``tarfile`` mode ``r|``): a layer of any size uses a
constant amount of memory.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile

from ..errors import InvalidInput

WHITEOUT_PREFIX = ".wh."
# ".wh..wh.*" names are AUFS bookkeeping (e.g. ".wh..wh.plnk" hardlink dirs), not
# deletions; only ".wh..wh..opq" of them means something to an image.
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
COPY_CHUNK = 1 << 20


def safe_relative_path(name: str) -> str:
    """Normalise a tar entry name to a path relative to the layer root, or refuse it.

    ``./a//b/`` -> ``a/b``; ``.`` -> ``""`` (the root itself). Absolute names and any
    ``..`` component are refused: no entry may land outside the layer directory.
    """
    if name.startswith("/"):
        raise InvalidInput(f"invalid layer entry '{name}': absolute path")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidInput(f"invalid layer entry '{name}': path leaves the layer")
        parts.append(part)
    return "/".join(parts)


def is_whiteout_device(path: str) -> bool:
    """True if ``path`` is an overlay whiteout: a char device numbered 0/0."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def make_whiteout(path: str) -> None:
    """Create the overlay whiteout for ``path``: ``mknod c 0 0``."""
    os.mknod(path, 0o000 | stat.S_IFCHR, os.makedev(0, 0))


def mark_opaque(path: str) -> None:
    """Mark directory ``path`` opaque for overlayfs (hides the lower layers' content)."""
    os.setxattr(path, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)


class _Extractor:
    """One extraction of one tar into one (fresh) directory."""

    def __init__(self, dest: str):
        self.dest = os.path.abspath(dest)
        self.dir_times: list[tuple[str, tarfile.TarInfo]] = []
        self.content_size = 0

    # ------------------------------------------------------------------ paths
    def target(self, rel: str, entry: str) -> str:
        """Absolute path for ``rel``, after checking that no parent is a symlink and
        creating missing parents (tar archives may omit directory entries)."""
        path = self.dest
        parts = rel.split("/") if rel else []
        for part in parts[:-1]:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise InvalidInput(f"invalid layer entry '{entry}': its parent "
                                   f"'{os.path.relpath(path, self.dest)}' is a symlink")
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidInput(f"invalid layer entry '{entry}': its parent "
                                   f"'{os.path.relpath(path, self.dest)}' is not a directory")
        return os.path.join(path, parts[-1]) if parts else path

    def existing(self, rel: str, entry: str) -> str:
        """Absolute path of something already extracted at ``rel`` (no parent may be a
        symlink, nothing is created); raises InvalidInput when it is not there."""
        path = self.dest
        for part in rel.split("/") if rel else []:
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                raise InvalidInput(f"invalid layer entry '{entry}': hard link to "
                                   f"'{rel}', which is not in this layer") from None
            if stat.S_ISLNK(st.st_mode) and path != os.path.join(self.dest, rel):
                raise InvalidInput(f"invalid layer entry '{entry}': hard link through "
                                   f"the symlink '{os.path.relpath(path, self.dest)}'")
        return path

    @staticmethod
    def clear(path: str, keep_dir: bool) -> None:
        """Remove what is at ``path`` so that a new entry can take its place (a later
        entry of a tar replaces an earlier one). A directory stays if the new entry is
        a directory too (its content merges)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
        else:
            os.unlink(path)

    # ------------------------------------------------------------------ entries
    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = safe_relative_path(member.name)
        base = rel.rsplit("/", 1)[-1]
        if base == OPAQUE_WHITEOUT:
            self.opaque_whiteout(rel, member)
        elif any(part.startswith(WHITEOUT_META_PREFIX) for part in rel.split("/")):
            return  # AUFS metadata (see WHITEOUT_META_PREFIX): Docker skips it too
        elif base.startswith(WHITEOUT_PREFIX):
            self.whiteout(rel, member)
        elif member.isdir():
            self.directory(rel, member)
        elif member.isreg():
            self.regular(tar, rel, member)
        elif member.issym():
            self.symlink(rel, member)
        elif member.islnk():
            self.hardlink(rel, member)
        elif member.ischr() or member.isblk():
            self.device(rel, member)
        elif member.isfifo():
            path = self.target(rel, member.name)
            self.clear(path, keep_dir=False)
            os.mkfifo(path, 0o600)
            self.metadata(path, member)
        else:
            raise InvalidInput(f"invalid layer entry '{member.name}': "
                               f"unsupported tar type {member.type!r}")

    def opaque_whiteout(self, rel: str, member: tarfile.TarInfo) -> None:
        # The marker itself is not written: its directory gets the overlay xattr.
        mark_opaque(os.path.dirname(self.target(rel, member.name)))

    def whiteout(self, rel: str, member: tarfile.TarInfo) -> None:
        parent, _, base = rel.rpartition("/")
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise InvalidInput(f"invalid layer entry '{member.name}': bad whiteout")
        path = self.target(f"{parent}/{hidden}" if parent else hidden, member.name)
        # The spec: a whiteout hides only lower layers; if this layer already made
        # the file, it stays.
        if os.path.lexists(path):
            return
        make_whiteout(path)

    def directory(self, rel: str, member: tarfile.TarInfo) -> None:
        path = self.target(rel, member.name)
        if path != self.dest:
            self.clear(path, keep_dir=True)
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
        self.metadata(path, member, times=False)
        # A directory's mtime changes as entries are added in it: set it last.
        self.dir_times.append((path, member))

    def regular(self, tar: tarfile.TarFile, rel: str, member: tarfile.TarInfo) -> None:
        path = self.target(rel, member.name)
        self.clear(path, keep_dir=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "wb") as out:
            src = tar.extractfile(member)
            remaining = member.size
            while remaining > 0:
                chunk = src.read(min(COPY_CHUNK, remaining))
                if not chunk:
                    raise InvalidInput(f"layer tar is truncated (in '{member.name}')")
                out.write(chunk)
                remaining -= len(chunk)
        self.content_size += member.size
        self.metadata(path, member)

    def symlink(self, rel: str, member: tarfile.TarInfo) -> None:
        # The link's *target* may be anything (``/bin/busybox`` is normal); it is only
        # resolved later, inside the container's root. We never follow it here.
        path = self.target(rel, member.name)
        if path == self.dest:
            raise InvalidInput(f"invalid layer entry '{member.name}': the root cannot be a link")
        self.clear(path, keep_dir=False)
        os.symlink(member.linkname, path)
        self.metadata(path, member)

    def hardlink(self, rel: str, member: tarfile.TarInfo) -> None:
        try:
            source_rel = safe_relative_path(member.linkname)
        except InvalidInput:
            raise InvalidInput(f"invalid layer entry '{member.name}': hard link to "
                               f"'{member.linkname}' points outside the layer") from None
        source = self.existing(source_rel, member.name)
        if stat.S_ISDIR(os.lstat(source).st_mode):
            raise InvalidInput(f"invalid layer entry '{member.name}': hard link to a directory")
        path = self.target(rel, member.name)
        if path == source:
            return
        self.clear(path, keep_dir=False)
        os.link(source, path, follow_symlinks=False)

    def device(self, rel: str, member: tarfile.TarInfo) -> None:
        if not (rel == "dev" or rel.startswith("dev/")):
            raise InvalidInput(f"invalid layer entry '{member.name}': device nodes are "
                               "only allowed under /dev")
        path = self.target(rel, member.name)
        self.clear(path, keep_dir=False)
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, 0o600 | kind, os.makedev(member.devmajor, member.devminor))
        self.metadata(path, member)

    # ------------------------------------------------------------------ metadata
    def metadata(self, path: str, member: tarfile.TarInfo, times: bool = True) -> None:
        """Owner, mode, xattrs and mtime of an entry, as the tar says (we run as root)."""
        is_link = member.issym()
        os.lchown(path, member.uid, member.gid)
        if not is_link:
            # chown clears setuid/setgid bits, so the mode comes after it.
            os.chmod(path, stat.S_IMODE(member.mode))
        self.xattrs(path, member)
        if times:
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    @staticmethod
    def xattrs(path: str, member: tarfile.TarInfo) -> None:
        for key, value in (member.pax_headers or {}).items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            if name.startswith("trusted.overlay."):
                continue  # never let a layer forge overlay metadata
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                os.setxattr(path, name, raw, follow_symlinks=False)
            except OSError as e:
                # Filesystems without user xattrs on symlinks etc.: not fatal, as in Docker.
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish(self) -> None:
        for path, member in reversed(self.dir_times):
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def apply_layer(fileobj, dest: str) -> int:
    """Extract the (uncompressed) layer tar read from ``fileobj`` into directory ``dest``.

    ``dest`` should be a fresh, empty directory. Returns the total size in bytes of the
    regular files written (the "size" ``docker images`` adds up). Raises
    :class:`InvalidInput` for an unsafe, malformed or truncated tar; the caller then
    removes ``dest``.
    """
    extractor = _Extractor(dest)
    # The layer's root is the container's "/" wherever the tar has no "./" entry:
    # 0755 like any root directory (a fresh temp dir would be 0700).
    os.chmod(dest, 0o755)
    try:
        # errorlevel=2: a malformed header is an error, not silently skipped.
        with tarfile.open(fileobj=fileobj, mode="r|", errorlevel=2, bufsize=COPY_CHUNK) as tar:
            for member in tar:
                extractor.apply(tar, member)
    except InvalidInput:
        raise
    except (tarfile.TarError, EOFError) as e:
        raise InvalidInput(f"invalid layer tar: {e}") from None
    extractor.finish()
    return extractor.content_size
