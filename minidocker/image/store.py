"""The image store: content-addressed blobs, extracted layers, image records and tags.

Everything lives under the data root, in files a learner can ``ls`` and ``cat``::

    blobs/sha256/<hex>          every blob, named by the sha256 of its bytes: layer tars
                                (maybe gzip/zstd-compressed), image configs, manifests
    layers/<diff_id hex>/       each layer extracted ONCE, used as an overlay lowerdir by
                                every image (and container) that has it
    layerdb/<diff_id hex>.json  what we know about a layer: its diff_id and size
    layerdb/blobs/<hex>         which diff_id a (compressed) layer blob unpacks to
    images/<id hex>.json        one record per image: its OCI image manifest
    repositories.json           tags: {"busybox:latest": "sha256:<id>"}

Two digests name a layer (OCI image spec, ``config.md``):

- the **blob digest**: sha256 of the bytes as stored/transferred (maybe compressed);
  it is in the manifest's ``layers[].digest``;
- the **diff_id**: sha256 of the *uncompressed* tar; it is in the config's
  ``rootfs.diff_ids``. A layer's directory is named after it, so the same content
  pulled once gzipped and once zstd-compressed is extracted only once.

The **image id** is the sha256 of the config blob (Docker's rule): two images with the
same config are the same image.

Concurrency: several minidocker processes may use the store at once. Blobs and
layers are written under a temporary name in ``$ROOT/tmp`` (scratch owned by the
writing process: :mod:`minidocker.scratch`) and ``rename``d into place, which is
atomic: a reader sees all of a blob or none of it. If two processes extract the same
layer, both finish, one rename wins, the other throws its copy away. Tags and image
records change only under the ``store`` lock (``paths.locked``).

Crashes: every change is ordered so that a process killed between any two steps leaves
a store whose records are all true (``docs/crash-consistency.rst`` walks through each
command): content first (blob, then extracted layer), then the records that point at
it (image record, then tag); deletion the other way round. What a killed writer leaves
is content no image refers to yet. A process that writes content holds the ``gc`` lock
*shared* until it exits (:meth:`Store.hold_writer_lock`), so garbage collection, which
takes it exclusively, knows when unreferenced content is nobody's work in progress.
"""

from __future__ import annotations

import ctypes
import errno
import io
import json
import os
import shutil
import time

from .. import clock, paths, scratch
from ..crashpoint import reached as crash_point
from ..errors import Conflict, InvalidInput, MinidockerError, NotFound
from . import reference
from .hashing import HashingReader, HashingWriter

# Not imported here, but where they are used: .compression (gzip, subprocess: ~5 ms)
# and .unpack (tarfile). ``run`` reads the store but unpacks and decompresses nothing,
# and should not pay for them at every start (hashlib waits in .hashing for the same
# reason).

CHUNK = 1 << 20

# Media types (OCI image spec, media-types.md; Docker's schema2 equivalents accepted).
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

STORE_LOCK = "store"
#: Held shared by every process that adds content to the store, exclusively by garbage
#: collection (see the module doc).
GC_LOCK = "gc"


def split_digest(digest: str) -> str:
    """``sha256:<hex>`` -> ``<hex>``, refusing anything else (the hex becomes a file name,
    so it must really be 64 hex digits)."""
    algorithm, sep, hexpart = (digest or "").partition(":")
    if algorithm != "sha256" or not sep or len(hexpart) != 64 or \
            any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidInput(f"invalid digest: {digest!r}")
    return hexpart


class BlobWriter:
    """See :meth:`Store.new_blob`. If the ``with`` block fails, nothing is stored."""

    def __init__(self, store: "Store"):
        self.store = store
        fd, self.tmp = scratch.mkstemp(store.root, "blob")
        self.file = os.fdopen(fd, "wb")
        self.hashing = HashingWriter(self.file)
        self.digest = None

    @property
    def size(self) -> int:
        return self.hashing.size

    def write(self, data) -> int:
        return self.hashing.write(data)

    def writable(self):
        return True

    def flush(self):
        self.file.flush()

    def tell(self):
        return self.size

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                self.digest = self.hashing.digest
                os.chmod(self.tmp, 0o644)
                os.rename(self.tmp, self.store.blob_path(self.digest))
        finally:
            _unlink_quietly(self.tmp)
        return False


def overlay_layer_dirs(dirs) -> list[str]:
    """Layer directories, bottom-most first, with each one kept once: at its top-most
    place.

    An image may list one diff_id twice (two steps that made the same change; old
    Docker images repeat the empty layer), but a layer is extracted once, and overlayfs
    refuses a lowerdir listed twice (ELOOP, "Too many levels of symbolic links"). The
    lower copy adds nothing: a lookup that misses the upper copy of a layer misses the
    lower one too, and whatever the layers in between hide of it, the upper copy shows
    again. So dropping all but the top-most copy leaves the merged tree the same."""
    dirs = list(dirs)
    kept, seen = [], set()
    for d in reversed(dirs):
        if d not in seen:
            seen.add(d)
            kept.append(d)
    return kept[::-1]


class Store:
    """The content store of one data root. Cheap to create; holds no open files."""

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(root or paths.data_root())
        self.blobs_dir = os.path.join(self.root, "blobs", "sha256")
        self.layers_dir = os.path.join(self.root, "layers")
        self.layerdb_dir = os.path.join(self.root, "layerdb")
        self.images_dir = os.path.join(self.root, "images")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.repositories_path = os.path.join(self.root, "repositories.json")

    # ================================================================== helpers
    def _ensure_dirs(self) -> None:
        """Make the store's directories; called before content is written, so it also
        takes the writer's lock (:meth:`hold_writer_lock`)."""
        for d in (self.blobs_dir, self.layers_dir, os.path.join(self.layerdb_dir, "blobs"),
                  self.images_dir, self.tmp_dir):
            os.makedirs(d, exist_ok=True)
        self.hold_writer_lock()

    def hold_writer_lock(self) -> None:
        """Take the ``gc`` lock *shared*, once, and keep it until this process exits.

        Between a blob's arrival and the image record that names it, the blob is
        referenced by nothing: garbage, to anyone who does not know that a pull is
        under way. The lock says it: garbage collection (:meth:`collect_garbage`,
        ``system check``) takes it exclusively, and so sees unreferenced content only
        when no writer is alive. A killed writer's lock goes with it (``flock``)."""
        key = (self.root, os.getpid())
        if key not in _WRITER_LOCKS and self.root not in _COLLECTING:
            _WRITER_LOCKS[key] = paths.acquire_flock(
                os.path.join(self.root, "locks", GC_LOCK), shared=True,
                what="the 'gc' lock (a garbage collection is running)")

    def collecting(self, timeout: float = 2.0):
        """The ``gc`` lock, exclusively: no writer is alive while it is held. Raises
        :class:`~minidocker.errors.MinidockerError` after ``timeout`` seconds. While
        it is held, this process may write too (a repair extracting a layer again)."""
        return _Collecting(self.root, timeout)

    def locked(self):
        """The store-wide lock for read-modify-write of tags and image records."""
        return paths.locked(STORE_LOCK, root=self.root)

    # ================================================================== blobs
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, split_digest(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def open_blob(self, digest: str):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def blob_size(self, digest: str) -> int:
        return os.path.getsize(self.blob_path(digest))

    def read_blob(self, digest: str) -> bytes:
        """A small blob (config, manifest) as bytes."""
        with self.open_blob(digest) as f:
            return f.read()

    def put_blob(self, src, expected: str | None = None) -> tuple[str, int]:
        """Store the bytes read from ``src`` (binary file object, or bytes) as a blob.

        Streams: the bytes go to a temporary file in ``$ROOT/tmp`` while being hashed,
        so a blob of any size needs constant memory. With ``expected`` the digest must
        match (a registry or an archive told us what it should be), else
        :class:`InvalidInput` naming the blob. On success the file is fsync'd and
        renamed to ``blobs/sha256/<hex>``; if it was already there, ours is dropped
        (same name, same content). Returns ``(digest, size)``.
        """
        if expected is not None:
            split_digest(expected)
        if isinstance(src, (bytes, bytearray, memoryview)):
            src = io.BytesIO(bytes(src))
        self._ensure_dirs()
        reader = HashingReader(src)
        fd, tmp = scratch.mkstemp(self.root, "blob")
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = reader.digest
            if expected is not None and digest != expected:
                raise InvalidInput(f"digest mismatch for blob {expected}: got {digest}")
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.blob_path(digest))
        except BaseException:
            _unlink_quietly(tmp)
            raise
        crash_point("blob-stored")
        return digest, reader.size

    def new_blob(self) -> "BlobWriter":
        """A writable file that becomes a blob when closed: ``with store.new_blob() as
        w: w.write(...)``, then ``w.digest``, ``w.size``. For content we *produce* (a layer
        tar from a directory): it is hashed while written, so never read back."""
        self._ensure_dirs()
        return BlobWriter(self)

    def put_json_blob(self, obj) -> tuple[str, int]:
        """Store a JSON document (config, manifest) with a fixed serialisation."""
        data = canonical_json(obj)
        return self.put_blob(data)

    # ================================================================== layers
    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, split_digest(diff_id))

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isdir(self.layer_dir(diff_id))

    def _layer_meta_path(self, diff_id: str) -> str:
        return os.path.join(self.layerdb_dir, split_digest(diff_id) + ".json")

    def _blob_map_path(self, digest: str) -> str:
        return os.path.join(self.layerdb_dir, "blobs", split_digest(digest))

    def layer_size(self, diff_id: str) -> int:
        """Bytes of file content in the extracted layer (what ``docker images`` sums)."""
        try:
            return int(paths.read_json(self._layer_meta_path(diff_id)).get("size", 0))
        except (FileNotFoundError, ValueError):
            return 0

    def diff_id_of_blob(self, digest: str) -> str | None:
        """The diff_id a layer blob unpacks to, if this store has unpacked it before."""
        try:
            with open(self._blob_map_path(digest)) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def add_layer(self, tar_fileobj, media_type: str | None = None,
                  expected: str | None = None) -> dict:
        """Store a layer blob and extract it once into ``layers/<diff_id hex>``.

        ``tar_fileobj`` yields the layer as stored: a tar, gzip- or zstd-compressed or
        plain (the compression is recognised from the first bytes, whatever the media
        type says). ``expected``: the blob digest the caller was promised. Returns the
        layer's descriptor, ``dict(digest=, diff_id=, size=, mediaType=)``; ``size`` is
        the blob's size, as in a manifest.
        """
        digest, _ = self.put_blob(tar_fileobj, expected=expected)
        return self.add_layer_blob(digest, media_type)

    def add_layer_blob(self, digest: str, media_type: str | None = None) -> dict:
        """Like :meth:`add_layer`, for a layer blob already stored (``put_blob``,
        :meth:`new_blob`): extract it unless that was done before."""
        size = self.blob_size(digest)
        compression = self._blob_compression(digest)
        diff_id = self.diff_id_of_blob(digest)
        if diff_id is None or not self.has_layer(diff_id):
            diff_id = self._extract_blob(digest)
        return {"mediaType": media_type or layer_media_type(compression),
                "digest": digest, "size": size, "diff_id": diff_id}

    def _blob_compression(self, digest: str) -> str | None:
        from .compression import detect_compression  # lazy: see the imports
        with self.open_blob(digest) as f:
            return detect_compression(f.read(8))

    def _extract_blob(self, digest: str) -> str:
        """Unpack a stored layer blob into a temp dir while hashing the uncompressed
        stream (the diff_id), then rename the dir to ``layers/<diff_id hex>``."""
        self._ensure_dirs()
        from . import compression, unpack  # lazy: see the imports
        tmp = scratch.mkdtemp(self.root, "layer")
        try:
            try:
                with open(self.blob_path(digest), "rb") as raw:
                    _, stream = compression.uncompressed(raw)
                    with stream:
                        reader = HashingReader(stream)
                        content_size = unpack.apply_layer(reader, tmp)
                        reader.drain()
            except compression.CorruptData as e:
                raise InvalidInput(f"corrupt layer blob {digest}: {e.detail}") from None
            except InvalidInput as e:
                raise InvalidInput(f"layer blob {digest}: {e}") from None
            diff_id = reader.digest
            crash_point("extracted")
            # Data on disk before the rename makes the layer visible: after a crash a
            # layer directory is complete or absent, never full of empty files.
            sync_filesystem(tmp)
            # The metadata first: a layer dir that exists always has its record. The
            # census lets ``system check`` tell a whole layer dir from a damaged one.
            paths.write_json(self._layer_meta_path(diff_id),
                             {"diff_id": diff_id, "size": content_size,
                              "tar_size": reader.size, "census": layer_census(tmp)})
            crash_point("layer-recorded")
            self._install_layer_dir(tmp, self.layer_dir(diff_id))
            paths.write_atomic(self._blob_map_path(digest), diff_id + "\n")
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        return diff_id

    @staticmethod
    def _install_layer_dir(tmp: str, final: str) -> None:
        """Atomically move an extracted layer into place; if another process already
        put the same layer there (same diff_id = same content), keep theirs."""
        if os.path.isdir(final):
            return
        try:
            os.rename(tmp, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise

    # ================================================================== images
    def _image_record_path(self, image_id: str) -> str:
        return os.path.join(self.images_dir, split_digest(image_id) + ".json")

    def write_image(self, config: dict, layers: list[dict]) -> str:
        """Record an image: store its config blob and its OCI manifest.

        ``config`` is an OCI image config (``architecture``, ``os``, ``config``,
        ``rootfs``, ``history``, ``created``); its ``rootfs.diff_ids`` are filled from
        ``layers`` (descriptors from :meth:`add_layer`) if missing, and must match
        them. Returns the image id, ``sha256:`` + sha256 of the config bytes.
        """
        config = dict(config)
        diff_ids = [layer["diff_id"] for layer in layers]
        rootfs = config.get("rootfs") or {}
        if not rootfs.get("diff_ids") and diff_ids:
            config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        elif rootfs.get("diff_ids", []) != diff_ids:
            raise InvalidInput("image config rootfs.diff_ids do not match its layers")
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        config.setdefault("architecture", host_architecture())
        config.setdefault("os", "linux")
        config_digest, _ = self.put_json_blob(config)
        return self.record_image(config_digest, layers)

    def record_image(self, config_digest: str, layers: list[dict]) -> str:
        """Record an image whose config blob is already stored (``put_blob``), keeping its
        bytes exactly: an image loaded from an archive or pulled keeps the id it had
        there (the id *is* the config's digest). ``layers``: descriptors as from
        :meth:`add_layer`, in the order of the config's ``rootfs.diff_ids``."""
        config = json.loads(self.read_blob(config_digest))
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if diff_ids != [layer["diff_id"] for layer in layers]:
            raise InvalidInput("image config rootfs.diff_ids do not match its layers")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_digest,
                       "size": self.blob_size(config_digest)},
            "layers": [{"mediaType": layer.get("mediaType") or MEDIA_OCI_LAYER,
                        "digest": layer["digest"], "size": layer["size"]}
                       for layer in layers],
        }
        self._ensure_dirs()     # (the writer's lock before the store lock, never after)
        with self.locked():
            # A concurrent rmi may have removed a blob or layer we were about to use.
            if not self.has_blob(config_digest):
                raise Conflict(f"config {config_digest} was removed while the image was "
                               "being written; try again")
            for layer in layers:
                if not self.has_blob(layer["digest"]) or not self.has_layer(layer["diff_id"]):
                    raise Conflict(f"layer {layer['diff_id']} was removed while the image "
                                   "was being written; try again")
            paths.write_json(self._image_record_path(config_digest), manifest)
        crash_point("image-recorded")
        return config_digest

    def has_image(self, image_id: str) -> bool:
        return os.path.exists(self._image_record_path(image_id))

    def image_manifest(self, image_id: str) -> dict:
        try:
            return paths.read_json(self._image_record_path(image_id))
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None

    def image_config(self, image_id: str) -> dict:
        manifest = self.image_manifest(image_id)
        return json.loads(self.read_blob(manifest["config"]["digest"]))

    def image_diff_ids(self, image_id: str) -> list[str]:
        return list(self.image_config(image_id).get("rootfs", {}).get("diff_ids", []))

    def layer_dirs(self, image_id: str) -> list[str]:
        """The image's extracted layers, bottom-most first (overlayfs wants the reverse
        order in ``lowerdir=``: top-most first), each directory once: see
        :func:`overlay_layer_dirs`."""
        return overlay_layer_dirs(self.layer_dir(d) for d in self.image_diff_ids(image_id))

    def image_ids(self) -> list[str]:
        try:
            names = os.listdir(self.images_dir)
        except FileNotFoundError:
            return []
        return ["sha256:" + n[:-5] for n in names if n.endswith(".json") and len(n) == 69]

    def image_size(self, image_id: str) -> int:
        return sum(self.layer_size(d) for d in self.image_diff_ids(image_id))

    # ================================================================== tags
    def repositories(self) -> dict[str, str]:
        """``{"busybox:latest": "sha256:<id>"}`` (familiar names, as Docker shows them)."""
        try:
            return paths.read_json(self.repositories_path)
        except FileNotFoundError:
            return {}

    def _write_repositories(self, repos: dict[str, str]) -> None:
        paths.write_json(self.repositories_path, repos)

    def tag(self, image_id: str, name: str, event: bool = True) -> str:
        """Point ``name`` (``repo[:tag]``, default tag ``latest``) at ``image_id``.
        Moves the tag if it pointed elsewhere. Returns the familiar name.

        Logs an image ``tag`` event (``docker tag``, ``commit``, ``build -t``), unless
        ``event`` is false: Docker's pull and load set their tags without one (their
        own ``pull``/``load`` event says it)."""
        key = normalize_name(name)
        with self.locked():
            if not self.has_image(image_id):
                raise NotFound(f"No such image: {image_id}")
            repos = self.repositories()
            repos[key] = image_id
            self._write_repositories(repos)
        if event:
            self.emit(image_id, "tag", key)
        return key

    def untag(self, name: str, event: bool = True) -> str:
        """Remove the tag ``name``; returns the image id it pointed at (and logs an
        ``untag`` event)."""
        key = normalize_name(name)
        with self.locked():
            repos = self.repositories()
            if key not in repos:
                raise NotFound(f"No such image: {key}")
            image_id = repos.pop(key)
            self._write_repositories(repos)
        crash_point("untagged")
        if event:
            self.emit(image_id, "untag")
        return image_id

    def emit(self, actor: str, action: str, name: str | None = None) -> None:
        """Log an image event as Docker's daemon does (``LogImageEvent``): the actor is
        an image id or a reference (``pull``/``push`` name ``busybox:latest``), the
        attributes are the image's labels and ``name`` (the tag, else the actor)."""
        from .. import events
        attrs = {}
        try:
            image_id = actor if actor.startswith("sha256:") else self.resolve(actor)
            attrs.update(self.image_config(image_id).get("config", {}).get("Labels") or {})
        except Exception:
            pass  # gone already (delete) or unreadable: the event still counts
        attrs["name"] = name if name is not None else actor
        events.emit("image", action, actor, attrs, root=self.root)

    def tags_of(self, image_id: str) -> list[str]:
        return sorted(k for k, v in self.repositories().items() if v == image_id)

    # ================================================================== lookup
    def resolve(self, ref: str) -> str:
        """Image id for a name (``busybox``, ``busybox:1``), a full or short id
        (``sha256:<hex>``, ``<hex>``, a unique prefix). Names win over id prefixes, as
        in Docker. Missing: ``NotFound("Unable to find image 'NAME:TAG' locally")``."""
        if not ref:
            raise InvalidInput("invalid reference format")
        repos = self.repositories()
        if ref.startswith("sha256:"):
            hexpart = ref[7:]
            if len(hexpart) == 64:
                image_id = "sha256:" + split_digest(ref)
                if self.has_image(image_id):
                    return image_id
                raise NotFound(f"Unable to find image '{ref}' locally")
            return self._resolve_prefix(hexpart, ref)
        key = None
        try:
            key = normalize_name(ref)
        except InvalidInput:
            if not _is_hex(ref):
                raise
        if key is not None and key in repos and self.has_image(repos[key]):
            return repos[key]
        if _is_hex(ref) and len(ref) <= 64:
            try:
                return self._resolve_prefix(ref, ref)
            except NotFound:
                pass
        raise NotFound(f"Unable to find image '{key or ref}' locally")

    def _resolve_prefix(self, prefix: str, ref: str) -> str:
        if not _is_hex(prefix) or not prefix:
            raise NotFound(f"Unable to find image '{ref}' locally")
        matches = [i for i in self.image_ids() if i[7:].startswith(prefix)]
        if len(matches) > 1:
            raise Conflict(f"ambiguous image id prefix '{prefix}' "
                           f"({len(matches)} images match)")
        if not matches:
            raise NotFound(f"Unable to find image '{ref}' locally")
        return matches[0]

    # ================================================================== listing
    def list_images(self) -> list[dict]:
        """Every image: ``dict(id, tags, created, size)``, newest first. ``size`` adds up
        the file contents of the image's layers, as ``docker images`` does."""
        repos = self.repositories()
        by_image: dict[str, list[str]] = {}
        for key, image_id in repos.items():
            by_image.setdefault(image_id, []).append(key)
        out = []
        for image_id in self.image_ids():
            try:
                config = self.image_config(image_id)
            except (NotFound, FileNotFoundError, ValueError):
                continue  # being deleted by another process right now
            out.append({
                "id": image_id,
                "tags": sorted(by_image.get(image_id, [])),
                "created": config.get("created", ""),
                "size": sum(self.layer_size(d)
                            for d in config.get("rootfs", {}).get("diff_ids", [])),
            })
        out.sort(key=lambda i: (clock.parse(i["created"]) or 0, i["id"]), reverse=True)
        return out

    # ================================================================== deletion
    def delete_image(self, image_id: str, event: bool = True) -> list[str]:
        """Remove an image: its tags, its record, its config blob, and every layer (blob
        and extracted dir) that no other image uses. Returns what was removed
        (``["sha256:<id>", "sha256:<layer diff_id>"...]``), and logs a ``delete`` event
        (not for the undo of a failed load or build: ``event=False``).

        Checking whether a container still uses the image is the caller's job (rmi).
        """
        removed = []
        with self.locked():
            manifest = self.image_manifest(image_id)
            config = json.loads(self.read_blob(manifest["config"]["digest"]))
            repos = self.repositories()
            kept = {k: v for k, v in repos.items() if v != image_id}
            if kept != repos:
                self._write_repositories(kept)
            os.unlink(self._image_record_path(image_id))
            removed.append(image_id)
            still_used_blobs, still_used_layers = self._references()
            diff_ids = config.get("rootfs", {}).get("diff_ids", [])
            if manifest["config"]["digest"] not in still_used_blobs:
                _unlink_quietly(self.blob_path(manifest["config"]["digest"]))
            for descriptor in manifest.get("layers", []):
                if descriptor["digest"] not in still_used_blobs:
                    _unlink_quietly(self.blob_path(descriptor["digest"]))
                    _unlink_quietly(self._blob_map_path(descriptor["digest"]))
            for diff_id in diff_ids:
                if diff_id not in still_used_layers and self.has_layer(diff_id):
                    self._remove_layer_dir(diff_id)
                    removed.append(diff_id)
        if event:
            self.emit(image_id, "delete")
        return removed

    def discard_unreferenced(self, blob_digests=(), diff_ids=()) -> None:
        """Remove the given blobs and extracted layers unless an image uses them: the
        undo of a load or commit that failed half-way (what it added is not referenced
        by any image yet), so that the store is left as it was."""
        with self.locked():
            used_blobs, used_layers = self._references()
            for digest in blob_digests:
                if digest not in used_blobs:
                    _unlink_quietly(self.blob_path(digest))
                    _unlink_quietly(self._blob_map_path(digest))
            for diff_id in diff_ids:
                if diff_id not in used_layers and self.has_layer(diff_id):
                    self._remove_layer_dir(diff_id)

    def _references(self) -> tuple[set[str], set[str]]:
        """Blob digests and diff_ids that the remaining images use."""
        blobs, layers = set(), set()
        for other in self.image_ids():
            try:
                manifest = self.image_manifest(other)
                blobs.add(manifest["config"]["digest"])
                blobs.update(d["digest"] for d in manifest.get("layers", []))
                layers.update(self.image_diff_ids(other))
            except (NotFound, FileNotFoundError, ValueError, KeyError):
                continue
        return blobs, layers

    def unreferenced(self, grace_seconds: float = 0) -> list[tuple[str, str, str]]:
        """Content no image refers to: ``(kind, name, path)`` for each unused blob
        (``blob``), extracted layer (``layer``), layer record without its directory
        (``layer record``) and blob-to-layer note without its blob (``layer note``).

        Such content is either a killed command's leftover or a live command's work
        in progress: call this while holding :meth:`collecting`, or give a
        ``grace_seconds`` (what is younger is kept)."""
        found = []
        blobs, layers = self._references()

        def young(path):
            return grace_seconds > 0 and not old_enough(path, grace_seconds)

        for name in _listdir(self.blobs_dir):
            path = os.path.join(self.blobs_dir, name)
            if _is_hex(name) and len(name) == 64 and "sha256:" + name not in blobs \
                    and not young(path):
                found.append(("blob", "sha256:" + name, path))
        for name in _listdir(self.layers_dir):
            path = os.path.join(self.layers_dir, name)
            meta = os.path.join(self.layerdb_dir, name + ".json")
            if _is_hex(name) and len(name) == 64 and "sha256:" + name not in layers and \
                    not young(meta if os.path.exists(meta) else path):
                found.append(("layer", "sha256:" + name, path))
        for name in _listdir(self.layerdb_dir):
            path = os.path.join(self.layerdb_dir, name)
            if name.endswith(".json") and not young(path) and \
                    not os.path.isdir(os.path.join(self.layers_dir, name[:-5])):
                found.append(("layer record", "sha256:" + name[:-5], path))
        for name in _listdir(os.path.join(self.layerdb_dir, "blobs")):
            path = os.path.join(self.layerdb_dir, "blobs", name)
            if not os.path.exists(os.path.join(self.blobs_dir, name)) and not young(path):
                found.append(("layer note", "sha256:" + name, path))
        return found

    def remove_unreferenced(self, kind: str, name: str, path: str) -> int:
        """Remove one item :meth:`unreferenced` found; returns the bytes freed."""
        if kind == "blob":
            freed = os.path.getsize(path) if os.path.exists(path) else 0
            _unlink_quietly(path)
            _unlink_quietly(self._blob_map_path(name))
            return freed
        if kind == "layer":
            freed = self.layer_size(name)
            self._remove_layer_dir(name)
            return freed
        _unlink_quietly(path)
        return 0

    def collect_garbage(self, grace_seconds: float = 600) -> tuple[list[str], int]:
        """Remove blobs, layers and scratch files that no image refers to.

        They appear when a command is killed (a pull that stored blobs but never wrote
        its image). When no command that writes to the store is alive (the ``gc``
        lock, see :meth:`hold_writer_lock`), everything unreferenced goes; when one
        is, only what is older than ``grace_seconds``, since the live one may be
        about to write the image that uses it. Scratch in ``$ROOT/tmp`` goes when
        its owner is dead. Returns (what was removed, bytes freed)."""
        removed, freed = [], 0
        gc, grace = None, grace_seconds
        if (self.root, os.getpid()) not in _WRITER_LOCKS:   # (we may be a writer too)
            try:
                gc = self.collecting()
                gc.__enter__()
                grace = 0
            except MinidockerError:
                gc = None
        try:
            with self.locked():
                for kind, name, path in self.unreferenced(grace):
                    freed += self.remove_unreferenced(kind, name, path)
                    if kind in ("blob", "layer"):
                        removed.append(name)
            freed += sum(size for _, size in scratch.sweep(self.root))
        finally:
            if gc is not None:
                gc.__exit__(None, None, None)
        return removed, freed

    def _remove_layer_dir(self, diff_id: str) -> None:
        """Rename first (atomic: no one sees a half-deleted layer), then the record,
        then delete (:func:`minidocker.scratch.discard`)."""
        doomed = scratch.mkdtemp(self.root, "deleted-layer")
        os.rename(self.layer_dir(diff_id), os.path.join(doomed, "layer"))
        _unlink_quietly(self._layer_meta_path(diff_id))
        crash_point("discarding")
        scratch.remove_tree(doomed)


# ====================================================================== module helpers
#: (data root, pid) -> the fd holding the ``gc`` lock shared (see Store.hold_writer_lock)
_WRITER_LOCKS: dict[tuple[str, int], int] = {}


#: data roots whose ``gc`` lock this process holds exclusively (Store.collecting)
_COLLECTING: set[str] = set()


class _Collecting(paths.locked):
    def __init__(self, root: str, timeout: float):
        super().__init__(GC_LOCK, root=root, timeout=timeout)
        self.root = root

    def __enter__(self):
        super().__enter__()
        _COLLECTING.add(self.root)
        return self

    def __exit__(self, *exc):
        _COLLECTING.discard(self.root)
        return super().__exit__(*exc)


def _forget_writer_locks() -> None:
    """In a forked child (a container's monitor outlives the command that forked it):
    close our copy of the writer's lock, so that it goes with the command that took it."""
    for fd in _WRITER_LOCKS.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _WRITER_LOCKS.clear()


os.register_at_fork(after_in_child=_forget_writer_locks)


def layer_census(path: str) -> dict:
    """What an extracted layer holds, in two numbers: its entries (files, directories,
    links, whiteouts) and the bytes of its regular files (each inode once). Recorded in
    the layer database when the layer is extracted; ``system check`` counts again and
    compares, which finds a layer directory damaged after the fact."""
    entries, size, seen = 0, 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            entries += 1
            if name in filenames:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if (st.st_mode & 0o170000) == 0o100000 and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_size
    return {"entries": entries, "bytes": size}


def old_enough(path: str, seconds: float) -> bool:
    """Was ``path`` last changed more than ``seconds`` ago?"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return max(st.st_mtime, st.st_ctime) < time.time() - seconds


def sync_filesystem(path: str) -> None:
    """``syncfs(2)``: write the dirty data of the filesystem holding ``path`` to disk
    (much cheaper than an fsync of every file of a layer, one by one)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def canonical_json(obj) -> bytes:
    """The bytes we store for a JSON document: compact, keys sorted, so that the same
    config always gets the same digest (and so the same image id)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def normalize_name(name: str) -> str:
    """``busybox`` -> ``busybox:latest``; ``docker.io/library/x:1`` -> ``x:1``; digests
    are kept (``x@sha256:...``). Raises InvalidInput like Docker for a bad reference."""
    return reference.familiar(reference.parse(name))


def layer_media_type(compression: str | None) -> str:
    return {None: MEDIA_OCI_LAYER, "gzip": MEDIA_OCI_LAYER_GZIP,
            "zstd": MEDIA_OCI_LAYER_ZSTD}.get(compression, MEDIA_OCI_LAYER)


def host_architecture() -> str:
    """The OCI/Go name of this machine's architecture (``amd64``, ``arm64``...)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}.get(machine, machine)


def new_config(cmd=None, env=None, history_by: str = "", comment: str = "",
               diff_ids=None, created: str | None = None, **config_fields) -> dict:
    """A fresh OCI image config for a one-step image (bootstrap, import)."""
    created = created or clock.rfc3339()
    inner = {}
    if env:
        inner["Env"] = list(env)
    if cmd:
        inner["Cmd"] = list(cmd)
    inner.update({k: v for k, v in config_fields.items() if v is not None})
    history = {"created": created, "created_by": history_by}
    if comment:
        history["comment"] = comment
    return {"architecture": host_architecture(), "os": "linux", "created": created,
            "config": inner,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids or [])},
            "history": [history]}


def _is_hex(s: str) -> bool:
    return bool(s) and all(c in "0123456789abcdef" for c in s)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
