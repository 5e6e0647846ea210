"""What a container changed: read an overlay *upper* directory.

A running container sees one merged tree (overlayfs), made of the image's layers
(read-only *lower* dirs) and the container's own *upper* dir, where every write lands.
The upper dir therefore **is** the container's layer, in the kernel's own encoding:

- a new or modified file is a plain file in upper (a modified lower file was *copied up*
  first, whole);
- a deleted lower file is a *whiteout*: a character device with device number 0/0;
- a directory that was deleted and made again is *opaque*: the xattr
  ``trusted.overlay.opaque=y`` says "hide everything the lower dirs had here".

Two readers of that encoding live here:

- :func:`changes_from_upperdir` -> the ``A``/``C``/``D`` list that ``docker diff`` prints;
- :func:`layer_tar_from_upperdir` -> an OCI layer tar ("changeset"), where whiteouts are
  spelled the image-spec way (``.wh.NAME`` files) because a tar cannot carry overlay's
  0/0 devices and xattrs portably. This is what ``commit`` (and ``build``'s ``RUN``) store.

The layer tar is *reproducible*: same upper dir in, same bytes out (fixed entry order,
normalised metadata, ``SOURCE_DATE_EPOCH`` honoured), so committing the same change
twice gives the same layer digest - and the same blob is stored only once.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass

from ..errors import InvalidInput

# --------------------------------------------------------------------------- overlay encoding
#: overlay stores its own metadata in xattrs; a root mount uses ``trusted.``, a mount with
#: ``-o userxattr`` (rootless) uses ``user.``.
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

# --------------------------------------------------------------------------- OCI encoding
#: image-spec layer.md, "Whiteouts": "A whiteout filename consists of the prefix .wh.
#: plus the basename of the path to be deleted."
WHITEOUT_PREFIX = ".wh."
#: image-spec layer.md, "Opaque Whiteout": "An opaque whiteout entry is a file with the
#: name .wh..wh..opq indicating that all siblings are hidden in the lower layer."
OPAQUE_MARKER = ".wh..wh..opq"

#: The only xattr that goes into a layer: file capabilities (``ping`` needs
#: cap_net_raw). Docker keeps exactly this one; overlay's own must never leak into a layer.
KEPT_XATTRS = ("security.capability",)

CHUNK = 1 << 20


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs(5): "A whiteout is created as a character device with 0/0 device number."
    """
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _overlay_xattr(path: str, name: str) -> bytes | None:
    for prefix in OVERLAY_XATTR_PREFIXES:
        try:
            return os.getxattr(path, prefix + name, follow_symlinks=False)
        except OSError:
            continue
    return None


def is_opaque_dir(path: str) -> bool:
    """overlayfs(5): "A directory is made opaque by setting the xattr
    "trusted.overlay.opaque" to "y"." Overlay does that when a directory is created where
    a whiteout stood (``rm -r /d; mkdir /d``): the new /d must not show the old one's files.
    """
    return _overlay_xattr(path, "opaque") == b"y"


def refuse_unsupported_overlay_features(path: str) -> None:
    """Two overlay features make the upper dir an incomplete description of the changes:
    ``redirect_dir`` (a renamed lower directory is a pointer to its old name) and
    ``metacopy`` (a chmod'ed lower file keeps its data in the lower dir). Docker turns
    both off for this reason, and so do the kernels this runs on; should one appear, stop
    rather than write a layer that silently misses data."""
    for feature in ("redirect", "metacopy"):
        if _overlay_xattr(path, feature) is not None:
            raise InvalidInput(f"{path}: overlay '{feature}' entries are not supported "
                               f"(mount the overlay with {feature}=off)")


# --------------------------------------------------------------------------- lower lookup
def _probe_layer(layer: str, parts: list[str]) -> tuple[os.stat_result | None, bool]:
    """Look for path ``parts`` in one extracted layer. Returns ``(stat or None, hides)``:
    ``hides`` says the layers *below* this one cannot show the path (or, for a directory
    found here, its contents), because this layer has a whiteout for it or for a parent,
    a non-directory there or where a parent should be, or an opaque directory on the way."""
    cur = layer
    opaque_parent = False
    for i, part in enumerate(parts):
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return None, opaque_parent
        if is_whiteout(st):
            return None, True
        if not stat.S_ISDIR(st.st_mode):
            return (st, True) if i == len(parts) - 1 else (None, True)
        if i == len(parts) - 1:
            return st, opaque_parent or is_opaque_dir(cur)
        opaque_parent = opaque_parent or is_opaque_dir(cur)
    return os.lstat(layer), False


def lower_lookup(lower_dirs: list[str], relpath: str) -> os.stat_result | None:
    """Stat ``relpath`` as the image (the merged lower dirs, without the container's upper
    dir) shows it, or ``None`` if the image has no such path.

    ``lower_dirs`` are extracted layers, **bottom-most first** (``store.layer_dirs``).
    Overlay's lookup rule, applied here by hand: search from the top-most layer down; the
    first layer that has the path wins; a whiteout for the path (or a parent) or an opaque
    parent directory in a layer hides what the layers below have there.
    """
    parts = [p for p in relpath.split("/") if p]
    for layer in reversed(lower_dirs):
        st, hides = _probe_layer(layer, parts)
        if st is not None:
            return st
        if hides:
            return None
    return None


def lower_children(lower_dirs: list[str], relpath: str) -> set[str]:
    """Names the image shows inside directory ``relpath``: overlay merges a directory's
    entries over all layers, top-most first, minus names whited out above, stopping at
    an opaque directory."""
    parts = [p for p in relpath.split("/") if p]
    names: set[str] = set()
    hidden: set[str] = set()
    for layer in reversed(lower_dirs):
        st, hides = _probe_layer(layer, parts)
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                break
            directory = os.path.join(layer, *parts)
            for name in os.listdir(directory):
                if is_whiteout(os.lstat(os.path.join(directory, name))):
                    hidden.add(name)
                elif name not in hidden:
                    names.add(name)
            if hides:
                break
            # the directory is here and not opaque: lower layers still contribute
            continue
        if hides:
            break
    return names


# --------------------------------------------------------------------------- left out
def skipped_paths(upper: str, lower_dirs: list[str] | None, exclude) -> set[str]:
    """The upper-dir entries to leave out of ``diff`` and ``commit``, given ``exclude``
    (relative paths the runtime created as mount points; see engine/commit.py): those
    paths, plus each parent directory that holds nothing else and is not itself changed
    (its owner and mode are the image's, or the image has no such directory: the
    runtime made it to reach the mount point)."""
    skip = {p.strip("/") for p in exclude or () if p.strip("/")}
    skip = {p for p in skip if os.path.lexists(os.path.join(upper, p))}
    parents = sorted({os.path.dirname(p) for p in skip} - {""}, key=lambda p: -p.count("/"))
    for rel in parents:
        while rel and rel not in skip:
            full = os.path.join(upper, rel)
            if not os.path.isdir(full) or os.path.islink(full) or is_opaque_dir(full):
                break
            if any(f"{rel}/{name}" not in skip for name in os.listdir(full)):
                break
            below = lower_lookup(lower_dirs or [], rel)
            st = os.lstat(full)
            if below is not None and (below.st_mode, below.st_uid, below.st_gid) != \
                    (st.st_mode, st.st_uid, st.st_gid):
                break
            skip.add(rel)
            rel = os.path.dirname(rel)
    return skip


# --------------------------------------------------------------------------- docker diff
@dataclass(frozen=True, order=True)
class Change:
    """One line of ``docker diff``: ``kind`` is ``A`` (added), ``C`` (changed) or ``D``
    (deleted); ``path`` is absolute inside the container."""
    path: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def _path_key(path: str) -> list[bytes]:
    """Sort key that puts a directory's contents right after it (``/a``, ``/a/b``,
    ``/a.txt``): the order of a depth-first walk, which is the order Docker prints."""
    return [os.fsencode(p) for p in path.split("/")]


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    """Docker's test for "this directory was only walked through, not changed": same
    size, mode and modification time (overlay's copy-up keeps all three)."""
    return (a.st_size == b.st_size and a.st_mode == b.st_mode
            and int(a.st_mtime) == int(b.st_mtime))


def changes_from_upperdir(upper: str, lower_dirs: list[str] | None = None,
                          exclude=()) -> list[Change]:
    """List what a container changed, as ``docker diff`` does.

    Docker's rules (moby ``pkg/archive/changes.go`` for overlay), made explicit:

    - a whiteout in upper -> ``D path``;
    - anything else in upper -> ``A`` if the image has no such path, else ``C``; but a
      directory identical to the image's (same size, mode, mtime) is not listed: overlay
      copied it up only to reach something below it;
    - the parent of an ``A`` or ``D`` is always listed as ``C`` (adding ``/root/x``
      changes ``/root``) - that is the slide's ``C /root`` / ``A /root/.bash_history``;
    - an opaque directory: its old contents are gone, so each name the image had there
      and the upper dir does not is listed ``D``. (Docker prints ``D /dir`` for it,
      then ``A`` lines for what is in it now: a deleted directory with content. We
      print what a user sees instead: the directory is still there, changed, and these
      names in it are gone.)

    ``lower_dirs`` are the image's extracted layers, bottom-most first; ``exclude``:
    see :func:`skipped_paths`.
    """
    lower_dirs = lower_dirs or []
    skip = skipped_paths(upper, lower_dirs, exclude)
    found: dict[str, str] = {}

    def record(path: str, kind: str) -> None:
        found.setdefault(path, kind)

    def record_parent(path: str) -> None:
        parent = os.path.dirname(path)
        if parent != "/":
            found[parent] = "C" if found.get(parent) != "A" else "A"

    def walk(rel: str) -> None:
        directory = os.path.join(upper, rel)
        for name in sorted(os.listdir(directory), key=os.fsencode):
            child_rel = f"{rel}/{name}" if rel else name
            if child_rel in skip:
                continue
            path = "/" + child_rel
            full = os.path.join(upper, child_rel)
            st = os.lstat(full)
            below = lower_lookup(lower_dirs, child_rel)
            if is_whiteout(st):
                if below is not None:
                    record(path, "D")
                    record_parent(path)
                continue
            if stat.S_ISDIR(st.st_mode) and is_opaque_dir(full):
                record(path, "C" if below is not None else "A")
                if below is None:
                    record_parent(path)
                elif stat.S_ISDIR(below.st_mode):
                    present = set(os.listdir(full))
                    for gone in lower_children(lower_dirs, child_rel) - present:
                        record(f"{path}/{gone}", "D")
                walk(child_rel)
                continue
            if below is None:
                record(path, "A")
                record_parent(path)
            elif not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(below.st_mode)
                      and _same_dir(st, below)):
                record(path, "C")
            if stat.S_ISDIR(st.st_mode):
                walk(child_rel)

    walk("")
    return [Change(path, kind) for path, kind in
            sorted(found.items(), key=lambda item: _path_key(item[0]))]


# --------------------------------------------------------------------------- layer tar
def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org): a Unix time; no timestamp in the
    output may be later than it. Unset or empty -> ``None``."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"invalid SOURCE_DATE_EPOCH {value!r}: want a Unix time in seconds") \
            from None


def _normalised_mtime(st: os.stat_result, epoch: int | None) -> int:
    """Whole seconds (a fraction would force a PAX header, and a changing one); clamped to
    ``SOURCE_DATE_EPOCH`` like BuildKit's ``rewrite-timestamp``."""
    mtime = max(int(st.st_mtime), 0)
    return min(mtime, epoch) if epoch is not None else mtime


def _kept_xattrs(path: str) -> dict[str, str]:
    """PAX records for the xattrs a layer keeps, in the ``SCHILY.xattr.`` spelling that
    GNU tar, Go's archive/tar and Docker use."""
    records = {}
    for name in KEPT_XATTRS:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        # tarfile writes str values; surrogateescape gets the raw bytes back out
        records[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return records


def _header(name: str, st: os.stat_result, epoch: int | None) -> tarfile.TarInfo:
    """A tar header holding only what a layer must carry: numeric owner, permission
    bits, mtime, type. No user/group names (they differ between hosts, and runtimes use
    the numbers), no atime/ctime (they change on every read), no inode numbers."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = _normalised_mtime(st, epoch)
    return info


def _whiteout_header(name: str, st: os.stat_result, epoch: int | None) -> tarfile.TarInfo:
    """image-spec layer.md: "A whiteout file is an empty file with a special filename that
    signifies a path should be deleted." Its metadata means nothing; we fix it (0:0,
    mode 0) so that it cannot make two equal layers differ."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.mode = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.size = 0
    info.mtime = _normalised_mtime(st, epoch)
    return info


def _ordered_entries(directory: str) -> list[tuple[str, os.stat_result]]:
    """The fixed order of one directory's entries: whiteouts first, then the rest, each
    group by byte value of the name. image-spec layer.md: "Implementations SHOULD generate
    layers such that the whiteout files appear before sibling directory entries"."""
    whiteouts, others = [], []
    for name in sorted(os.listdir(directory), key=os.fsencode):
        st = os.lstat(os.path.join(directory, name))
        (whiteouts if is_whiteout(st) else others).append((name, st))
    return whiteouts + others


class LayerTarFile(tarfile.TarFile):
    """A tar writer that ends the archive the way Go's ``archive/tar`` (Docker, podman,
    umoci) does: two zero blocks, and no padding up to a 10 KiB "record" (a tape-era
    habit of GNU tar and Python). Same tree, same bytes as Docker: an unchanged
    container's layer is Docker's well-known empty layer, ``sha256:5f70bf18...``
    (1024 zero bytes), that registries already have."""

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            if self.mode in ("a", "w", "x"):
                # POSIX: "the end of the archive is two consecutive zero blocks"
                self.fileobj.write(tarfile.NUL * (tarfile.BLOCKSIZE * 2))
                self.offset += tarfile.BLOCKSIZE * 2
        finally:
            if not self._extfileobj:
                self.fileobj.close()


def layer_tar_from_upperdir(upper: str, out_fileobj, lower_dirs: list[str] | None = None,
                            exclude=()) -> None:
    """Write the OCI layer tar ("changeset") for overlay upper dir ``upper`` to
    ``out_fileobj`` (any writable binary stream; nothing is buffered whole).

    Entries are depth-first, names relative (``etc/``, ``etc/passwd``), a directory before
    its contents. Conversions, with the image-spec's rule behind each:

    - overlay whiteout (0/0 char device) -> empty regular file ``dir/.wh.NAME``
      ("Whiteouts": prefix .wh. plus the basename of the path to be deleted);
    - opaque directory -> the directory, then ``dir/.wh..wh..opq`` before its contents
      ("Opaque Whiteout": all siblings are hidden in the lower layer);
    - a file with several names -> the first name (in entry order) as a file, the others as
      tar hard links to it ("Hardlinks": a hardlink entry refers to an earlier entry);
    - sockets are skipped (a tar cannot hold one, and one is never part of an image).

    With ``lower_dirs`` (the image's layers, bottom-most first), a whiteout that hides
    nothing in the image is dropped ("Whiteout files MUST only apply to resources in
    lower/parent layers"). ``exclude``: see :func:`skipped_paths`.
    """
    epoch = source_date_epoch()
    skip = skipped_paths(upper, lower_dirs, exclude)
    first_name_of_inode: dict[tuple[int, int], str] = {}
    # format fixed to PAX: long names and >8 GiB files work, and Python writes a PAX
    # record only when a field does not fit the ustar header, so small layers are plain.
    with LayerTarFile.open(fileobj=out_fileobj, mode="w|", format=tarfile.PAX_FORMAT,
                           encoding="utf-8", errors="surrogateescape") as tar:

        def add_directory_contents(rel: str) -> None:
            directory = os.path.join(upper, rel) if rel else upper
            for name, st in _ordered_entries(directory):
                child_rel = f"{rel}/{name}" if rel else name
                if child_rel in skip:
                    continue
                full = os.path.join(directory, name)
                if is_whiteout(st):
                    if lower_dirs is not None and lower_lookup(lower_dirs, child_rel) is None:
                        continue
                    wh = f"{rel}/{WHITEOUT_PREFIX}{name}" if rel else WHITEOUT_PREFIX + name
                    tar.addfile(_whiteout_header(wh, st, epoch))
                    continue
                refuse_unsupported_overlay_features(full)
                if stat.S_ISSOCK(st.st_mode):
                    continue
                add_entry(child_rel, full, st)

        def add_entry(rel: str, full: str, st: os.stat_result) -> None:
            info = _header(rel, st, epoch)
            info.pax_headers = _kept_xattrs(full)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                if is_opaque_dir(full):
                    tar.addfile(_whiteout_header(f"{rel}/{OPAQUE_MARKER}", st, epoch))
                add_directory_contents(rel)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in first_name_of_inode:
                    info.type = tarfile.LNKTYPE
                    info.linkname = first_name_of_inode[key]
                    tar.addfile(info)
                    return
                if st.st_nlink > 1:
                    first_name_of_inode[key] = rel
                info.type = tarfile.REGTYPE
                with open(full, "rb") as f:
                    # the size as it is now: a running container may still be writing
                    info.size = os.fstat(f.fileno()).st_size
                    tar.addfile(info, _exactly(f, info.size))
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(full)
                tar.addfile(info)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)

        add_directory_contents("")


class _exactly:
    """A reader that yields exactly ``size`` bytes of ``f``: what the header promised,
    padded with zeros if the file shrank meanwhile (tarfile would otherwise fail half-way
    through the archive)."""

    def __init__(self, f, size: int):
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data
