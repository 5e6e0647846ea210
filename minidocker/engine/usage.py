"""Where the disk went (``system df``) and taking back what nothing uses (``system prune``).

What each kind of object costs, the way Docker counts it:

- an **image** is its layers; layers shared by several images are counted once in the
  total (``SIZE``), and once per image in its ``SHARED SIZE``. An image is *active*
  when a container uses it; what only unused images hold is *reclaimable*;
- a **container** costs its writable layer (the overlay's upper dir: what ``diff``
  lists); a stopped one is reclaimable;
- a **local volume** costs its ``_data``; one no container mounts is reclaimable;
- the **build cache** is, for the classic builder, the images the build steps made
  (counted with the images) plus one small record per step in ``buildcache/``; a record
  whose image is gone is reclaimable.
"""

from __future__ import annotations

import os

from .. import clock, paths, scratch
from ..errors import Conflict
from ..image.store import Store
from . import lifecycle, volumes
from .containers import list_containers


def image_usage(store: Store, containers=None) -> list[dict]:
    """One dict per image: id, tags, created, size (all its layers), shared (bytes of
    its layers that other images have too), unique, containers (how many use it)."""
    containers = list_containers() if containers is None else containers
    images = store.list_images()
    layers_of = {i["id"]: list(dict.fromkeys(store.image_diff_ids(i["id"]))) for i in images}
    owners: dict[str, int] = {}
    for diff_ids in layers_of.values():
        for d in diff_ids:
            owners[d] = owners.get(d, 0) + 1
    users: dict[str, int] = {}
    for c in containers:
        users[c.image_id] = users.get(c.image_id, 0) + 1
    out = []
    for image in images:
        sizes = {d: store.layer_size(d) for d in layers_of[image["id"]]}
        shared = sum(s for d, s in sizes.items() if owners[d] > 1)
        total = sum(sizes.values())
        out.append({**image, "size": total, "shared": shared, "unique": total - shared,
                    "containers": users.get(image["id"], 0)})
    return out


def layers_size(store: Store) -> int:
    """Every extracted layer once: what the images take on disk together."""
    total = 0
    for name in _listdir(store.layers_dir):
        if len(name) == 64:
            total += store.layer_size("sha256:" + name)
    return total


def used_layers_size(store: Store, images: list[dict]) -> int:
    """The bytes of the layers that images in use by a container hold, each layer once:
    what pruning every unused image could not take back. (Docker's own sum counts a
    used image's shared layers as reclaimable too; this one does not.)"""
    used = set()
    for image in images:
        if image["containers"]:
            used.update(store.image_diff_ids(image["id"]))
    return sum(store.layer_size(d) for d in used)


def container_usage(containers=None) -> list[dict]:
    containers = list_containers() if containers is None else containers
    out = []
    for c in containers:
        out.append({"container": c, "size": scratch.disk_usage(c.upper_dir),
                    "volumes": len(volumes.volume_names_of(c.state))})
    return out


def volume_usage(containers=None) -> list[dict]:
    containers = list_containers() if containers is None else containers
    links: dict[str, int] = {}
    for c in containers:
        for name in volumes.volume_names_of(c.state):
            links[name] = links.get(name, 0) + 1
    return [{"name": v["Name"], "links": links.get(v["Name"], 0),
             "size": scratch.disk_usage(volumes.data_dir(v["Name"]))}
            for v in volumes.list_volumes()]


def build_cache_dir() -> str:
    return os.path.join(paths.data_root(), "buildcache")


def build_cache_usage(store: Store) -> list[dict]:
    """One dict per step record: key, image (the id it names), alive (that image is
    still here), size (of the record), created."""
    out = []
    base = build_cache_dir()
    for key in sorted(_listdir(base)):
        path = os.path.join(base, key)
        if key.startswith(".") or not os.path.isfile(path):
            continue
        try:
            with open(path) as f:
                image = f.read().strip()
            st = os.stat(path)
        except OSError:
            continue
        out.append({"key": key, "image": image, "alive": bool(image) and store.has_image(image),
                    "size": st.st_size, "created": clock.rfc3339(st.st_mtime)})
    return out


# --------------------------------------------------------------------------- prune
def prune_containers() -> tuple[list[str], int]:
    """Remove every stopped container (``container prune``): (ids, bytes reclaimed)."""
    removed, reclaimed = [], 0
    for c in lifecycle.reconcile_all():
        if c.state["State"].get("Running"):
            continue
        size = scratch.disk_usage(c.upper_dir)
        try:
            lifecycle.remove(c)
        except (OSError, Conflict):
            continue
        removed.append(c.id)
        reclaimed += size
    return removed, reclaimed


def prune_build_cache(store: Store, everything: bool = False) -> tuple[list[str], int]:
    """Remove the step records whose image is gone (all of them with ``everything``)."""
    removed, reclaimed = [], 0
    for entry in build_cache_usage(store):
        if entry["alive"] and not everything:
            continue
        try:
            os.unlink(os.path.join(build_cache_dir(), entry["key"]))
        except FileNotFoundError:
            continue
        removed.append(entry["key"][:25])
        reclaimed += entry["size"]
    return removed, reclaimed


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
