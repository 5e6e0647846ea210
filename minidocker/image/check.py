"""``system check``, the image store's part: is every record of the store true?

What is checked, and what ``--repair`` does about it:

=====================================  ===============================================
found                                  repair
=====================================  ===============================================
a blob whose bytes do not hash to its  removed (what used it is then "not whole",
name (``blobs/sha256/<hex>``)          below)
an extracted layer whose directory     extracted again from its blob when the store
does not match the layer database      has one; otherwise its images are not whole
(its census: entries and bytes), or
has no record there
content no image refers to: a blob,    removed (left by a killed pull, load, commit,
a layer, a record of either            build...; only judged while no writer is alive)
an image whose record, config or       removed with its tags, unless a container uses
layers are missing or damaged (not     it (never a used image; a whole image is never
"whole")                               touched)
a tag naming no image                  removed
scratch of a dead command in           removed (:mod:`minidocker.scratch`)
``$ROOT/tmp``, or an unfinished
``write_atomic`` file (``.tmp-*``)
=====================================  ===============================================

Each finding is a :class:`Problem`: one line for the user, and the repair as a function
that says what it did. Nothing here decides what is *used*: the engine passes the
images its containers use (``in_use``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable

from .. import paths, scratch
from ..errors import MinidockerError
from ..kernel import processes
from .hashing import new_hasher
from .store import CHUNK, Store, _is_hex, layer_census


@dataclass
class Problem:
    """Something wrong in the data root: ``subject`` (``blob sha256:…``), what is wrong,
    and how to repair it (a function returning the line that says what it did), if
    it can be."""
    subject: str
    text: str
    repair: Callable[[], str] | None = field(default=None, repr=False)

    def __str__(self):
        return f"{self.subject}: {self.text}"


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


# --------------------------------------------------------------------------- blobs
def blob_digest_ok(path: str, name: str) -> bool:
    """Does the file hash to its name? (The digest check every reader could make.)"""
    h = new_hasher()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest() == name


def check_blobs(store: Store) -> tuple[list[Problem], set[str]]:
    """Every blob against its digest; returns (problems, digests of the bad blobs)."""
    problems, bad = [], set()
    for name in sorted(_listdir(store.blobs_dir)):
        path = os.path.join(store.blobs_dir, name)
        if not (len(name) == 64 and _is_hex(name)) or not os.path.isfile(path):
            problems.append(Problem(f"file blobs/sha256/{name}", "not a blob (its name is not "
                                    "a sha256 digest)", _remover(path, f"removed blobs/sha256/{name}")))
            continue
        digest = "sha256:" + name
        if not blob_digest_ok(path, name):
            bad.add(digest)
            problems.append(Problem(f"blob {digest}", "content does not match its digest",
                                    _blob_remover(store, digest)))
    return problems, bad


def _blob_remover(store: Store, digest: str):
    def repair():
        store.remove_unreferenced("blob", digest, store.blob_path(digest))
        return f"removed blob {digest}"
    return repair


def _remover(path: str, said: str):
    def repair():
        scratch.remove_tree(path)
        return said
    return repair


# --------------------------------------------------------------------------- layers
def layer_state(store: Store, diff_id: str) -> str | None:
    """Why the extracted layer ``diff_id`` cannot be trusted, or None when it is whole:
    its directory and its record exist and agree (the census taken at extraction)."""
    hexpart = diff_id.split(":", 1)[1]
    directory = os.path.join(store.layers_dir, hexpart)
    meta_path = os.path.join(store.layerdb_dir, hexpart + ".json")
    if not os.path.isdir(directory):
        return "its extracted directory is missing"
    try:
        meta = paths.read_json(meta_path)
    except FileNotFoundError:
        return "it has no record in the layer database"
    except ValueError:
        return "its record in the layer database is damaged"
    if meta.get("diff_id") != diff_id:
        return f"its record names another layer ({meta.get('diff_id')})"
    census = meta.get("census")
    if census is not None:
        now = layer_census(directory)
        if now != census:
            return (f"its directory does not match the layer database ({now['entries']} "
                    f"entries, {now['bytes']} bytes; {census['entries']} and "
                    f"{census['bytes']} when extracted)")
    return None


def blob_for_layer(store: Store, diff_id: str, bad_blobs=()) -> str | None:
    """A stored, sound blob that unpacks to ``diff_id`` (from the layer notes)."""
    notes = os.path.join(store.layerdb_dir, "blobs")
    for name in _listdir(notes):
        try:
            with open(os.path.join(notes, name)) as f:
                if f.read().strip() != diff_id:
                    continue
        except OSError:
            continue
        digest = "sha256:" + name
        if store.has_blob(digest) and digest not in bad_blobs:
            return digest
    if store.has_blob(diff_id) and diff_id not in bad_blobs:
        return diff_id          # an uncompressed layer: its blob digest is its diff_id
    return None


def _reextract(store: Store, diff_id: str, blob: str):
    def repair():
        with store.locked():
            if os.path.isdir(store.layer_dir(diff_id)):
                store._remove_layer_dir(diff_id)
            paths_meta = os.path.join(store.layerdb_dir, diff_id.split(":", 1)[1] + ".json")
            if os.path.exists(paths_meta):
                os.unlink(paths_meta)
        got = store.add_layer_blob(blob)["diff_id"]
        if got != diff_id:
            raise MinidockerError(f"blob {blob} unpacks to {got}, not {diff_id}")
        return f"extracted layer {diff_id} again from blob {blob}"
    return repair


# --------------------------------------------------------------------------- images
def image_faults(store: Store, image_id: str, bad_blobs=(), bad_layers=()) -> list[str]:
    """Why image ``image_id`` is not whole (empty: it is): its record, its config blob
    (present, sound, naming as many layers as the manifest), every layer blob and
    every extracted layer."""
    try:
        manifest = store.image_manifest(image_id)
        config_digest = manifest["config"]["digest"]
        descriptors = list(manifest.get("layers", []))
    except (ValueError, KeyError, TypeError):
        return ["its record is damaged"]
    if config_digest != image_id:
        return [f"its record names config {config_digest}, not its own id"]
    if not store.has_blob(config_digest):
        return ["its config blob is missing"]
    if config_digest in bad_blobs:
        return ["its config blob is damaged"]
    try:
        config = json.loads(store.read_blob(config_digest))
        diff_ids = list(config["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError):
        return ["its config is not an image config"]
    faults = []
    if len(diff_ids) != len(descriptors):
        faults.append(f"its config has {len(diff_ids)} layers, its manifest {len(descriptors)}")
    for d in descriptors:
        digest = d.get("digest", "")
        if not store.has_blob(digest):
            faults.append(f"layer blob {digest} is missing")
        elif digest in bad_blobs:
            faults.append(f"layer blob {digest} is damaged")
    for diff_id in dict.fromkeys(diff_ids):
        if diff_id in bad_layers:
            faults.append(f"layer {diff_id}: {bad_layers[diff_id]}")
        elif not store.has_layer(diff_id):
            faults.append(f"layer {diff_id}: its extracted directory is missing")
    return faults


def _image_remover(store: Store, image_id: str):
    def repair():
        with store.locked():
            repos = store.repositories()
            kept = {k: v for k, v in repos.items() if v != image_id}
            if kept != repos:
                store._write_repositories(kept)
            try:
                os.unlink(store._image_record_path(image_id))
            except FileNotFoundError:
                pass
        tags = sorted(k for k, v in repos.items() if v == image_id)
        named = f" ({', '.join(tags)})" if tags else ""
        return f"removed image {image_id}{named}"
    return repair


# --------------------------------------------------------------------------- scratch
def atomic_leftovers(root: str) -> list[str]:
    """``write_atomic`` temporary files (``.tmp-<pid>-<start>-…``) whose writer is dead,
    in the directories that hold records."""
    dirs = [root, os.path.join(root, "images"), os.path.join(root, "layerdb"),
            os.path.join(root, "layerdb", "blobs"), os.path.join(root, "buildcache"),
            os.path.join(root, "distribution"), os.path.join(root, "networks")]
    for top in ("containers", "networks", "volumes"):
        for name in _listdir(os.path.join(root, top)):
            dirs.append(os.path.join(root, top, name))
            if top == "containers":
                dirs.append(os.path.join(root, top, name, "bundle"))
    found = []
    for d in dirs:
        for name in _listdir(d):
            if name.startswith(".tmp-"):
                path = os.path.join(d, name)
                if os.path.isfile(path) and scratch.is_stale(path):
                    found.append(path)
    return sorted(found)


def check_scratch(root: str) -> list[Problem]:
    problems = []
    for path in scratch.stale_entries(root):
        rel = os.path.relpath(path, root)
        who = scratch.owner(os.path.basename(path))
        why = f"left by process {who['Pid']}, which is gone" if who else "left by a command long gone"
        problems.append(Problem(f"scratch {rel}", why, _remover(path, f"removed scratch {rel}")))
    for path in atomic_leftovers(root):
        rel = os.path.relpath(path, root)
        problems.append(Problem(f"file {rel}", "an unfinished write of a process that is gone",
                                _remover(path, f"removed {rel}")))
    return problems


# --------------------------------------------------------------------------- the lot
def check_store(store: Store, in_use: dict[str, list[str]] | None = None,
                judge_unreferenced: bool = True) -> list[Problem]:
    """Every problem of the image store (see the module doc). ``in_use``: image id ->
    the containers using it (their images are reported but never removed).
    ``judge_unreferenced``: whether content no image refers to counts as a leftover
    (only when no writer is alive; the caller holds ``store.collecting()``)."""
    in_use = in_use or {}
    problems, bad_blobs = check_blobs(store)

    image_ids = sorted(store.image_ids())
    used_layers = set()
    for image_id in image_ids:
        try:
            used_layers.update(store.image_diff_ids(image_id))
        except (MinidockerError, OSError, ValueError, KeyError, TypeError):
            pass
    bad_layers = {}
    for name in sorted(_listdir(store.layers_dir)):
        diff_id = "sha256:" + name
        if len(name) != 64 or not _is_hex(name) or diff_id not in used_layers:
            continue
        why = layer_state(store, diff_id)
        if why:
            blob = blob_for_layer(store, diff_id, bad_blobs)
            if blob:
                problems.append(Problem(f"layer {diff_id}", why, _reextract(store, diff_id, blob)))
            else:
                bad_layers[diff_id] = why

    for image_id in image_ids:
        faults = image_faults(store, image_id, bad_blobs, bad_layers)
        if not faults:
            continue
        users = in_use.get(image_id, [])
        text = "not whole: " + "; ".join(faults)
        if users:
            problems.append(Problem(f"image {image_id}", text + " (kept: used by container "
                                    f"{', '.join(u[:12] for u in users)})"))
        else:
            problems.append(Problem(f"image {image_id}", text, _image_remover(store, image_id)))

    try:
        repos = store.repositories()
    except ValueError:
        repos = {}
        problems.append(Problem("file repositories.json", "damaged: no tag can be read"))
    for key, image_id in sorted(repos.items()):
        if not isinstance(image_id, str) or not store.has_image(image_id):
            problems.append(Problem(f"tag {key}", f"names image {image_id}, which is not here",
                                    _untagger(store, key)))

    if judge_unreferenced:
        for kind, name, path in store.unreferenced():
            if kind == "blob" and name in bad_blobs:
                continue       # reported already
            text = {"blob": "no image uses it (left by a command that did not finish)",
                    "layer": "no image uses it (left by a command that did not finish)",
                    "layer record": "a record of a layer that is not here",
                    "layer note": "notes which layer a blob unpacks to, but the blob is gone"}[kind]
            problems.append(Problem(f"{kind} {name}", text, _unref_remover(store, kind, name, path)))
    problems += check_scratch(store.root)
    return problems


def _untagger(store: Store, key: str):
    def repair():
        with store.locked():
            repos = store.repositories()
            repos.pop(key, None)
            store._write_repositories(repos)
        return f"removed tag {key}"
    return repair


def _unref_remover(store: Store, kind: str, name: str, path: str):
    def repair():
        with store.locked():
            store.remove_unreferenced(kind, name, path)
        return f"removed {kind} {name}"
    return repair


def writers_alive(store: Store) -> list[int]:
    """Pids of the processes that hold the store's writer lock (mid-pull, mid-build...)."""
    holders = paths.lock_holders(os.path.join(store.root, "locks", "gc"))
    return [p for p in holders if p != os.getpid() and processes.start_time(p) is not None]


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
