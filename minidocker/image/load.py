"""``load``: the images of an archive into the store.

It reads:

- the layout :mod:`.save` writes (an OCI image layout plus Docker's ``manifest.json``),
  and ``docker save`` archives from Docker 1.10-24 (``manifest.json`` with
  ``<id>/layer.tar``, ``<id>/json``, ``VERSION``, ``<config hex>.json``);
- archives of Docker before 1.10 (no ``manifest.json``: a chain of ``<id>/json`` linked
  by ``parent``, and ``repositories``; the slide's ``docker save`` output);
- podman's ``docker-archive`` (``<diff_id hex>.tar`` layers) and ``oci-archive`` (an OCI
  layout only; gzip- or zstd-compressed layers, maybe a nested index);
- the whole archive may itself be gzip/bzip2/xz/zstd-compressed, as ``docker load``
  allows.

Every digest is checked: a blob's sha256 against its name and descriptor, a manifest's
sizes, and each layer's *uncompressed* sha256 against the config's ``rootfs.diff_ids``.
A mismatch is an error naming the blob. Nothing is read whole into memory except small
JSON documents; a layer of any size streams. If anything fails, what this load added
to the store is removed again: the store is left as it was.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass

from .. import scratch
from ..errors import InvalidInput
from . import compression
from .compression import detect_compression
from .hashing import HashingReader, sha256_digest
from .layout import (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_OCI_INDEX, blob_path,
                     oci_media_type)
from .store import (CHUNK, Store, host_architecture, layer_media_type, normalize_name,
                    split_digest)

MEDIA_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

#: A config, manifest or index bigger than this is not an image's metadata.
MAX_JSON = 64 << 20


# ============================================================================ input
class _Archive:
    """Random access to the members of an archive that is a plain tar on disk.

    Member names are normalised (``./a`` -> ``a``) and only used as keys: nothing is
    ever extracted by name, so an entry called ``../../etc/passwd`` can only fail to be
    found, never be written somewhere.
    """

    def __init__(self, path: str):
        try:
            self.tar = tarfile.open(path, mode="r:", errorlevel=2)
            members = self.tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InvalidInput(f"invalid archive: {_tar_error(e)}") from None
        self.members = {}
        for m in members:
            self.members[_clean(m.name)] = m

    def close(self):
        self.tar.close()

    def has(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str, hops: int = 0) -> tarfile.TarInfo | None:
        """The regular-file member behind ``name``, following the symlinks and hard
        links old ``docker save`` used for layers shared by two images."""
        m = self.members.get(_clean(name))
        if m is None or hops > 16:
            return None
        if m.issym():
            target = posixpath.join(posixpath.dirname(_clean(name)), m.linkname)
            return self._find(target, hops + 1)
        if m.islnk():
            return self._find(m.linkname, hops + 1)
        return m if m.isreg() else None

    def open(self, name: str):
        m = self._find(name)
        if m is None:
            raise InvalidInput(f"invalid archive: '{name}' is missing")
        return _Checked(self.tar.extractfile(m), m.size, name)

    def size(self, name: str) -> int:
        m = self._find(name)
        if m is None:
            raise InvalidInput(f"invalid archive: '{name}' is missing")
        return m.size

    def read_json(self, name: str):
        if self.size(name) > MAX_JSON:
            raise InvalidInput(f"invalid archive: '{name}' is too big for a JSON document")
        data = self.read_bytes(name)
        try:
            return json.loads(data)
        except ValueError as e:
            raise InvalidInput(f"invalid archive: '{name}' is not valid JSON ({e})") from None

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()


class _Checked:
    """A member's stream that turns a short read (truncated archive) into an error."""

    def __init__(self, f, size: int, name: str):
        self.f, self.left, self.name = f, size, name

    def read(self, n: int = -1) -> bytes:
        want = self.left if n is None or n < 0 else min(n, self.left)
        if want <= 0:
            return b""
        try:
            data = self.f.read(want)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InvalidInput(f"invalid archive: reading '{self.name}': {_tar_error(e)}") from None
        if not data:
            raise InvalidInput(f"invalid archive: '{self.name}' is truncated")
        self.left -= len(data)
        return data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _tar_error(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return {"unexpected end of data": "unexpected end of file (truncated archive?)"}.get(text, text)


def spool_archive(src, tmp_dir: str) -> str:
    """Copy the archive read from ``src`` (a pipe, a file) into a plain tar file in
    ``tmp_dir``, decompressing it if it is gzip/bzip2/xz/zstd-compressed, and return
    its path. Reading an archive needs random access (``manifest.json`` is at the end
    of a Docker archive, but says how to read what comes before); streaming to disk
    keeps memory flat."""
    fd, path = scratch.mkstemp(os.path.dirname(tmp_dir), "load")
    try:
        with os.fdopen(fd, "wb") as out:
            kind, stream = compression.uncompressed(src)
            with stream:
                shutil.copyfileobj(stream, out, CHUNK)
    except compression.CorruptData as e:
        os.unlink(path)
        raise InvalidInput(f"invalid archive: corrupt {e.kind} data in the archive "
                           f"({e.detail})") from None
    except BaseException:
        os.unlink(path)
        raise
    return path


# ============================================================================ formats
@dataclass
class _LayerRef:
    """Where one layer of an image is in the archive and what it must hash to."""
    path: str
    digest: str | None = None        # blob digest, when the archive states one
    size: int | None = None          # blob size, when a descriptor states one
    media_type: str | None = None


@dataclass
class _ImageToLoad:
    config_path: str
    config_digest: str | None        # when the archive names the config by its digest
    layers: list[_LayerRef]
    tags: list[str]
    config_bytes: bytes | None = None   # built here (pre-1.10 archives), not read


def find_images(archive: _Archive) -> list[_ImageToLoad]:
    """Recognise the archive's format and list its images."""
    if archive.has("manifest.json"):
        return _docker_manifest_images(archive)
    if archive.has("index.json"):
        return _oci_layout_images(archive)
    if archive.has("repositories"):
        return _legacy_v1_images(archive)
    raise InvalidInput("invalid archive: no manifest.json, index.json or repositories "
                       "found (not a docker save or OCI archive)")


def _digest_from_path(path: str) -> str | None:
    """``blobs/sha256/<hex>`` or ``<hex>.json``: the digest the name promises."""
    base = posixpath.basename(path)
    if base.endswith(".json"):
        base = base[:-5]
    parent = posixpath.basename(posixpath.dirname(path))
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base) and \
            (parent == "sha256" or path.endswith(".json")):
        return "sha256:" + base
    return None


def _docker_manifest_images(archive: _Archive) -> list[_ImageToLoad]:
    """``manifest.json`` (Docker 1.10+, podman's docker-archive, our own save)."""
    entries = archive.read_json("manifest.json")
    if not isinstance(entries, list):
        raise InvalidInput("invalid archive: manifest.json is not a list")
    images = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or \
                not isinstance(entry.get("Layers"), list):
            raise InvalidInput("invalid archive: manifest.json entry without Config/Layers")
        sources = entry.get("LayerSources") or {}
        layers = []
        for path in entry["Layers"]:
            if not archive.has(path):
                foreign = [d for d in sources.values() if d.get("mediaType") == MEDIA_DOCKER_FOREIGN]
                hint = " (a foreign layer, which must be downloaded)" if foreign else ""
                raise InvalidInput(f"invalid archive: layer '{path}' is missing{hint}")
            layers.append(_LayerRef(path, _digest_from_path(path)))
        images.append(_ImageToLoad(entry["Config"], _digest_from_path(entry["Config"]),
                                   layers, list(entry.get("RepoTags") or [])))
    return images


def _oci_layout_images(archive: _Archive) -> list[_ImageToLoad]:
    """An OCI image layout (podman's and skopeo's ``oci-archive``)."""
    layout = archive.read_json("oci-layout") if archive.has("oci-layout") else None
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise InvalidInput("invalid archive: index.json without a valid oci-layout file")
    index = archive.read_json("index.json")
    images = []
    for descriptor in _manifest_descriptors(archive, index, depth=0):
        manifest = _read_blob_json(archive, descriptor)
        if not isinstance(manifest.get("config"), dict) or not isinstance(manifest.get("layers"), list):
            raise InvalidInput(f"invalid archive: manifest {descriptor.get('digest')} "
                               "has no config or layers")
        config = manifest["config"]
        _check_size(archive, config)
        layers = []
        for layer in manifest["layers"]:
            _check_size(archive, layer)
            layers.append(_LayerRef(_blob_path(layer), layer["digest"], layer.get("size"),
                                    layer.get("mediaType")))
        images.append(_ImageToLoad(_blob_path(config), config["digest"], layers,
                                   _names_from_annotations(descriptor.get("annotations") or {})))
    return images


def _manifest_descriptors(archive: _Archive, index: dict, depth: int) -> list[dict]:
    """The image manifests an index points at; a nested index (multi-platform image) is
    followed, keeping the entries for this machine's platform."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidInput("invalid archive: index.json has no manifests list")
    found = []
    for d in index["manifests"]:
        if not isinstance(d, dict):
            raise InvalidInput("invalid archive: bad descriptor in index.json")
        media = d.get("mediaType")
        if media in (MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST):
            if depth > 4:
                raise InvalidInput("invalid archive: indexes nested too deep")
            nested = _manifest_descriptors(archive, _read_blob_json(archive, d), depth + 1)
            names = _names_from_annotations(d.get("annotations") or {})
            for n in nested:
                if names and not n.get("annotations"):
                    n = {**n, "annotations": d["annotations"]}
                found.append(n)
            continue
        platform = d.get("platform") or {}
        if platform and (platform.get("os", "linux") != "linux" or
                         platform.get("architecture", host_architecture()) != host_architecture()):
            continue
        found.append(d)
    if not found and index["manifests"]:
        raise InvalidInput(f"invalid archive: no image for linux/{host_architecture()}")
    return found


def _names_from_annotations(annotations: dict) -> list[str]:
    """The image's name: ``io.containerd.image.name`` (a full name) or
    ``org.opencontainers.image.ref.name`` when it is a full name (podman, skopeo write
    ``localhost/busybox:latest``); a bare tag (``latest``, what the spec suggests) names
    no repository, so the image loads untagged."""
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not value:
            continue
        if key == ANNOTATION_REF_NAME and ("/" not in value and ":" not in value):
            continue
        try:
            return [normalize_name(value)]
        except InvalidInput:
            continue
    return []


def _blob_path(descriptor: dict) -> str:
    return blob_path(descriptor.get("digest", ""))


def _check_size(archive: _Archive, descriptor: dict) -> None:
    """image-spec descriptor.md: "size ... specifies the size, in bytes, of the raw
    content"; a reader must check it (before hashing: it is cheaper)."""
    path = _blob_path(descriptor)
    if not archive.has(path):
        raise InvalidInput(f"invalid archive: blob {descriptor['digest']} is missing")
    size = descriptor.get("size")
    if size is not None and archive.size(path) != size:
        raise InvalidInput(f"invalid archive: blob {descriptor['digest']} has size "
                           f"{archive.size(path)}, its descriptor says {size}")


def _read_blob_json(archive: _Archive, descriptor: dict):
    _check_size(archive, descriptor)
    data = archive.read_bytes(_blob_path(descriptor))
    _check_digest(data, descriptor["digest"])
    try:
        return json.loads(data)
    except ValueError:
        raise InvalidInput(f"invalid archive: blob {descriptor['digest']} is not JSON") from None


def _check_digest(data: bytes, digest: str) -> None:
    got = sha256_digest(data)
    if got != digest:
        raise InvalidInput(f"invalid archive: digest mismatch for blob {digest}: got {got}")


def _legacy_v1_images(archive: _Archive) -> list[_ImageToLoad]:
    """Archives of Docker < 1.10: ``repositories`` names the top v1 image of each tag;
    each ``<id>/json`` names its ``parent``. The image config is made from the top
    ``json`` the way Docker's migration did (v1 fields dropped, ``rootfs`` and
    ``history`` added); empty layer tars become ``empty_layer`` history entries."""
    repos = archive.read_json("repositories")
    if not isinstance(repos, dict):
        raise InvalidInput("invalid archive: repositories is not an object")
    by_top: dict[str, list[str]] = {}
    for repo, tags in repos.items():
        for tag, top in (tags or {}).items():
            by_top.setdefault(top, []).append(f"{repo}:{tag}")
    images = []
    for top, tags in by_top.items():
        chain = []
        v1_id = top
        while v1_id:
            if len(chain) > 1000 or not all(c in "0123456789abcdef" for c in v1_id):
                raise InvalidInput(f"invalid archive: bad image chain at '{v1_id}'")
            v1 = archive.read_json(f"{v1_id}/json")
            chain.append((v1_id, v1))
            v1_id = v1.get("parent") or ""
        chain.reverse()
        layers, history, diff_placeholders = [], [], []
        for v1_id, v1 in chain:
            path = f"{v1_id}/layer.tar"
            empty = not archive.has(path) or _is_empty_tar(archive, path)
            cmd = (v1.get("container_config") or {}).get("Cmd") or []
            entry = {"created": v1.get("created", ""), "created_by": " ".join(cmd)}
            for key in ("author", "comment"):
                if v1.get(key):
                    entry[key] = v1[key]
            if empty:
                entry["empty_layer"] = True
            else:
                layers.append(_LayerRef(path))
                diff_placeholders.append(path)
            history.append(entry)
        config = {k: v for k, v in chain[-1][1].items()
                  if k not in ("id", "parent", "Size", "parent_id", "layer_id", "throwaway")}
        config["history"] = history
        # rootfs.diff_ids are filled in once the layers have been hashed (see load)
        config["rootfs"] = {"type": "layers", "diff_ids": diff_placeholders}
        images.append(_ImageToLoad(f"{top}/json", None, layers, sorted(tags),
                                   config_bytes=json.dumps(config).encode()))
    return images


def _is_empty_tar(archive: _Archive, path: str) -> bool:
    """A v1 image without a filesystem change still has a layer.tar: an empty archive
    (only end-of-archive zero blocks)."""
    if archive.size(path) > 10240:
        return False
    data = archive.read_bytes(path)
    return data.strip(b"\0") == b""


# ============================================================================ load
class _Undo:
    """What one load added to the store, to remove again if it fails."""

    def __init__(self, store: Store):
        self.store = store
        self.blobs: list[str] = []
        self.layers: list[str] = []

    def note_blob(self, digest: str, existed: bool):
        if not existed:
            self.blobs.append(digest)

    def note_layer(self, diff_id: str, existed: bool):
        if not existed:
            self.layers.append(diff_id)

    def run(self):
        self.store.discard_unreferenced(self.blobs, self.layers)


def load_archive(store: Store, src, say=print) -> list[str]:
    """Load every image of the archive read from ``src`` (a binary stream). Calls
    ``say`` with Docker's lines (``Loaded image: busybox:latest``, or ``Loaded image ID:
    sha256:...`` for an image without a name) and returns the image ids.

    A plain tar in a regular file (``load -i FILE``, ``load < FILE``) is read where it
    is; anything else (a pipe, a compressed archive) is first spooled to ``$ROOT/tmp``.
    """
    os.makedirs(store.tmp_dir, exist_ok=True)
    spooled = None
    if _is_plain_tar_file(src):
        path = f"/proc/self/fd/{src.fileno()}"
    else:
        path = spooled = spool_archive(src, store.tmp_dir)
    try:
        if os.path.getsize(path) == 0:
            from_stdin = getattr(src, "name", None) in ("<stdin>", 0)
            raise InvalidInput("requested load from stdin, but stdin is empty" if from_stdin
                               else "invalid archive: empty file")
        archive = _Archive(path)
        try:
            return _load_from(store, archive, say)
        finally:
            archive.close()
    finally:
        if spooled:
            os.unlink(spooled)


def _is_plain_tar_file(src) -> bool:
    """True for an uncompressed archive in a regular file we can seek in."""
    try:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            return False
        start = src.tell()
        head = src.read(8)
        src.seek(start)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return start == 0 and detect_compression(head) is None


def _load_from(store: Store, archive: _Archive, say) -> list[str]:
    images = find_images(archive)
    for image in images:
        # check every name first: a bad tag must not leave a half-loaded image
        image.tags = [normalize_name(t) for t in image.tags]
    undo = _Undo(store)
    prepared, recorded = [], []
    try:
        # every layer and config of every image first; then the image records, so
        # that an image never exists whose sibling in the archive turned out broken
        for image in images:
            prepared.append((*_store_image_content(store, archive, image, undo), image.tags))
        loaded = []
        for config_digest, descriptors, tags in prepared:
            existed = store.has_image(config_digest)
            loaded.append((store.record_image(config_digest, descriptors), tags))
            if not existed:
                recorded.append(config_digest)
    except BaseException:
        for image_id in recorded:
            store.delete_image(image_id, event=False)
        undo.run()
        raise
    ids = []
    for image_id, tags in loaded:
        for tag in tags:
            _move_tag(store, image_id, tag, say)
            say(f"Loaded image: {tag}")
        if not tags:
            say(f"Loaded image ID: {image_id}")
        store.emit(image_id, "load")
        ids.append(image_id)
    return ids


def _move_tag(store: Store, image_id: str, tag: str, say) -> None:
    previous = store.repositories().get(tag)
    if previous and previous != image_id:
        say(f"The image {tag} already exists, renaming the old one with ID {previous} "
            "to empty string")
    store.tag(image_id, tag, event=False)


def _store_image_content(store: Store, archive: _Archive, image: _ImageToLoad,
                         undo: _Undo) -> tuple[str, list[dict]]:
    """Check and store one image's config and layers; returns (config digest, layer
    descriptors) for :meth:`Store.record_image`."""
    legacy = image.config_bytes is not None
    config_bytes = image.config_bytes if legacy else archive.read_bytes(image.config_path)
    if image.config_digest:
        _check_digest(config_bytes, image.config_digest)
    try:
        config = json.loads(config_bytes)
    except ValueError:
        raise InvalidInput(f"invalid archive: image config '{image.config_path}' is not JSON") from None
    if not isinstance(config, dict):
        raise InvalidInput(f"invalid archive: image config '{image.config_path}' is not an object")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(image.layers):
        raise InvalidInput(f"invalid archive: image config '{image.config_path}' lists "
                           f"{len(diff_ids or [])} layers, the archive has {len(image.layers)}")
    descriptors = []
    for i, layer in enumerate(image.layers):
        want = None if legacy else diff_ids[i]
        descriptor = _load_layer(store, archive, layer, want, undo)
        descriptors.append(descriptor)
    if legacy:
        config["rootfs"]["diff_ids"] = [d["diff_id"] for d in descriptors]
        config_bytes = json.dumps(config).encode()
    existed = store.has_blob(sha256_digest(config_bytes))
    config_digest, _ = store.put_blob(config_bytes)
    undo.note_blob(config_digest, existed)
    return config_digest, descriptors


def _load_layer(store: Store, archive: _Archive, layer: _LayerRef, want_diff_id: str | None,
                undo: _Undo) -> dict:
    """Store one layer blob and its extraction, after checking its digests.

    The blob digest is known from the archive (``blobs/sha256/<hex>``) or, for layers
    stored under another name (``<id>/layer.tar``), found by hashing first. A layer the
    store already has is only hashed - to check it - and not stored again.
    """
    if layer.size is not None and archive.size(layer.path) != layer.size:
        raise InvalidInput(f"invalid archive: blob {layer.digest} has size "
                           f"{archive.size(layer.path)}, its descriptor says {layer.size}")
    if want_diff_id is not None:
        split_digest(want_diff_id)
    digest, hashed_diff_id = layer.digest, None
    if digest is None:
        digest, hashed_diff_id = _hash_layer(archive, layer)
        _check_diff_id(layer.path, hashed_diff_id, want_diff_id)
    known = _known_layer(store, digest, want_diff_id or hashed_diff_id)
    if known is not None:
        if hashed_diff_id is None:
            got_digest, got_diff_id = _hash_layer(archive, layer)
            if got_digest != digest:
                raise InvalidInput(f"invalid archive: digest mismatch for blob {digest}: "
                                   f"got {got_digest}")
            _check_diff_id(digest, got_diff_id, want_diff_id)
        return known
    existed_blob = store.has_blob(digest)
    existed_layer = want_diff_id is not None and store.has_layer(want_diff_id)
    with archive.open(layer.path) as f:
        try:
            descriptor = store.add_layer(f, expected=digest)
        except InvalidInput as e:
            undo.note_blob(digest, existed_blob)
            raise InvalidInput(f"invalid archive: {e}") from None
    undo.note_blob(digest, existed_blob)
    undo.note_layer(descriptor["diff_id"], existed_layer)
    _check_diff_id(digest if layer.digest else layer.path, descriptor["diff_id"], want_diff_id)
    descriptor["mediaType"] = oci_media_type(layer.media_type) or descriptor["mediaType"]
    return descriptor


def _check_diff_id(name: str, got: str, want: str | None) -> None:
    """image-spec config.md: "rootfs.diff_ids ... the layer content hashes (DiffID),
    in order from first to last" - the sha256 of the *uncompressed* tar."""
    if want is not None and got != want:
        raise InvalidInput(f"invalid archive: layer {name} unpacks to {got}, "
                           f"the image config says {want}")


def _known_layer(store: Store, digest: str, diff_id: str | None) -> dict | None:
    """The store's descriptor for this layer if it has both the blob and its extraction."""
    if not store.has_blob(digest):
        return None
    stored_diff_id = store.diff_id_of_blob(digest)
    if not stored_diff_id or not store.has_layer(stored_diff_id) or \
            diff_id not in (None, stored_diff_id):
        return None
    with store.open_blob(digest) as f:
        kind = detect_compression(f.read(8))
    return {"digest": digest, "diff_id": stored_diff_id, "size": store.blob_size(digest),
            "mediaType": layer_media_type(kind)}


def _hash_layer(archive: _Archive, layer: _LayerRef) -> tuple[str, str]:
    """(blob digest, diff_id) of a layer in the archive: the sha256 of its bytes as
    stored, and of its uncompressed tar. One streaming pass."""
    with archive.open(layer.path) as f:
        raw = HashingReader(f)
        kind, stream = compression.uncompressed(raw)
        if kind is None:
            raw.drain()
            return raw.digest, raw.digest
        try:
            with stream:
                uncompressed = HashingReader(stream)
                uncompressed.drain()
        except compression.CorruptData as e:
            raise InvalidInput(f"invalid archive: corrupt {e.kind} data in {layer.path} "
                               f"({e.detail})") from None
        raw.drain()      # padding after the compressed stream is part of the blob
        return raw.digest, uncompressed.digest
