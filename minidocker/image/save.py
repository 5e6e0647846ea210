"""``save``: images in one tar file, in the formats every tool reads.

It writes the layout Docker 25+ writes, which is two formats in one tar:

- an **OCI image layout** (image-spec ``image-layout.md``): ``oci-layout`` (the version),
  ``index.json`` (the entry point: one descriptor per image and tag), and every blob
  (layer tars, configs, manifests) under ``blobs/sha256/<hex>``, named by its digest;
- Docker's own **manifest.json**: ``[{"Config": ..., "RepoTags": [...], "Layers":
  [...]}]``, whose paths point at those same blobs, plus the legacy ``repositories``
  file. ``docker load`` (any version since 1.10) and podman's docker-archive reader
  use it.

So skopeo (``oci-archive:`` and ``docker-archive:``), podman, umoci and Docker all read
one file, and no blob is written twice. The other direction, reading such archives
(and older ones), is :mod:`.load`.
"""

from __future__ import annotations

import calendar
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field

from ..errors import InvalidInput
from . import reference
from .changes import LayerTarFile, source_date_epoch
from .hashing import sha256_digest
from .layout import (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_OCI_INDEX, OCI_LAYOUT,
                     blob_path, oci_media_type)
from .store import (MEDIA_OCI_CONFIG, MEDIA_OCI_LAYER, MEDIA_OCI_MANIFEST, Store,
                    canonical_json, normalize_name, split_digest)


@dataclass
class _SavedImage:
    image_id: str
    tags: list[str] = field(default_factory=list)   # familiar names: busybox:latest


def images_to_save(store: Store, refs: list[str]) -> list[_SavedImage]:
    """Which images and which of their tags ``save REF...`` writes, as Docker decides:
    a name with a tag saves that tag; a bare repository name (``busybox``) saves every
    tag of that repository; an id saves the image with no tag (it loads untagged)."""
    chosen: dict[str, _SavedImage] = {}

    def add(image_id, tag=None):
        entry = chosen.setdefault(image_id, _SavedImage(image_id))
        if tag and tag not in entry.tags:
            entry.tags.append(tag)

    repos = store.repositories()
    for ref in refs:
        tags = _tags_of_repository(ref, repos)
        if tags:
            for tag in tags:
                add(repos[tag], tag)
            continue
        image_id = store.resolve(ref)
        key = None
        try:
            key = normalize_name(ref)
        except InvalidInput:
            pass
        add(image_id, key if key in repos and repos[key] == image_id else None)
    return list(chosen.values())


def _tags_of_repository(ref: str, repos: dict[str, str]) -> list[str]:
    """For a bare repository name (no tag, no digest): all its tags, sorted."""
    try:
        parsed = reference.parse(ref, default_tag=False)
    except InvalidInput:
        return []
    if parsed.tag or parsed.digest:
        return []
    name = reference.familiar_name(parsed)
    return sorted(k for k in repos if reference.split_familiar(k)[0] == name)


def _oci_manifest_for(store: Store, image_id: str) -> dict:
    """The image's manifest as written into the layout, with OCI media types (a
    manifest pulled in Docker's schema2 spelling is re-spelled, not re-compressed)."""
    stored = store.image_manifest(image_id)
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": stored["config"]["digest"],
                   "size": stored["config"]["size"]},
        "layers": [{"mediaType": oci_media_type(d.get("mediaType")) or MEDIA_OCI_LAYER,
                    "digest": d["digest"], "size": d["size"]} for d in stored["layers"]],
    }


def _created_time(config: dict) -> int:
    """The image's ``created`` as a Unix time (0 if absent or unreadable)."""
    text = (config.get("created") or "")[:19]
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0


def save_images(store: Store, refs: list[str], out_fileobj) -> None:
    """Write ``refs`` (names or ids) as one archive to ``out_fileobj`` (any writable
    binary stream; nothing is seeked, so a pipe works).

    The entries, in the order Docker 25 writes them: ``blobs/``, ``blobs/sha256/``, the
    blobs sorted by digest, ``index.json``, ``manifest.json``, ``oci-layout``,
    ``repositories``. The archive is reproducible: the same images give the same bytes
    (file times are the newest image's ``created``, clamped to ``SOURCE_DATE_EPOCH``).
    """
    if not refs:
        raise InvalidInput('"save" requires at least 1 argument')
    images = images_to_save(store, refs)
    blobs: dict[str, bytes | None] = {}      # digest -> bytes (small JSON) or None (in store)
    index_entries, docker_manifest, repositories = [], [], {}
    newest = 0
    for image in images:
        manifest = _oci_manifest_for(store, image.image_id)
        manifest_bytes = canonical_json(manifest)
        manifest_digest = sha256_digest(manifest_bytes)
        blobs[manifest_digest] = manifest_bytes
        blobs[manifest["config"]["digest"]] = None
        for layer in manifest["layers"]:
            blobs[layer["digest"]] = None
        newest = max(newest, _created_time(store.image_config(image.image_id)))
        descriptor = {"mediaType": MEDIA_OCI_MANIFEST, "digest": manifest_digest,
                      "size": len(manifest_bytes)}
        layer_paths = [blob_path(d["digest"]) for d in manifest["layers"]]
        docker_manifest.append({
            "Config": blob_path(manifest["config"]["digest"]),
            "RepoTags": list(image.tags) or None,
            "Layers": layer_paths,
        })
        for tag in image.tags:
            full = reference.parse(tag)
            annotations = {ANNOTATION_IMAGE_NAME: str(full)}
            if full.tag:
                annotations[ANNOTATION_REF_NAME] = full.tag
                # the legacy file maps a tag to the top layer's id, as Docker's save does
                top = split_digest(manifest["layers"][-1]["digest"]) if manifest["layers"] \
                    else split_digest(image.image_id)
                repositories.setdefault(reference.familiar_name(full), {})[full.tag] = top
            index_entries.append({**descriptor, "annotations": annotations})
        if not image.tags:
            index_entries.append(descriptor)
    epoch = source_date_epoch()
    mtime = min(newest, epoch) if epoch is not None else newest
    index = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": index_entries}
    with LayerTarFile.open(fileobj=out_fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs", mtime)
        _add_dir(tar, "blobs/sha256", mtime)
        for digest in sorted(blobs):
            name = blob_path(digest)
            if blobs[digest] is not None:
                _add_bytes(tar, name, blobs[digest], mtime)
            else:
                with store.open_blob(digest) as f:
                    _add_stream(tar, name, f, os.fstat(f.fileno()).st_size, mtime)
        _add_bytes(tar, "index.json", _json_bytes(index), mtime)
        _add_bytes(tar, "manifest.json", _json_bytes(docker_manifest), mtime)
        _add_bytes(tar, "oci-layout", _json_bytes(OCI_LAYOUT), mtime)
        if repositories:
            _add_bytes(tar, "repositories", _json_bytes(repositories), mtime)
    for image in images:
        store.emit(image.image_id, "save")


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _info(name: str, mtime: int, kind=tarfile.REGTYPE, mode=0o644, size=0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_dir(tar, name, mtime):
    tar.addfile(_info(name, mtime, tarfile.DIRTYPE, 0o755))


def _add_bytes(tar, name, data, mtime):
    tar.addfile(_info(name, mtime, size=len(data)), io.BytesIO(data))


def _add_stream(tar, name, f, size, mtime):
    tar.addfile(_info(name, mtime, size=size), f)
