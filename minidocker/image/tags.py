"""Names on images, and images that lose them: Docker's rules for ``tag``, ``rmi`` and
``image prune``.

Each function returns what it did as data, in the Engine API's shapes: ``rmi`` a list
of ``{"Untagged": name}`` / ``{"Deleted": id}`` (``DELETE /images/{name}``), ``prune``
``{"ImagesDeleted": [...], "SpaceReclaimed": bytes}`` (``POST /images/prune``). The
command line prints them (``Untagged: busybox:latest``); an API server would send them.

Whether a container still uses an image is the engine's knowledge, not the store's:
the caller passes ``containers_using(image_id) -> [(container id, running?), ...]``
(:func:`minidocker.engine.images.containers_using`), so that this layer never imports
the one above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import Conflict, InvalidInput, NotFound
from .describe import find_image, intermediate_ids, normalised, repo_of
from .reference import parse
from .store import Store

#: ``containers_using(image_id)``: ``(container id, running?)`` per container made
#: from the image.
ContainersUsing = Callable[[str], list[tuple[str, bool]]]


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


# =========================================================================== tag
def tag_image(store: Store, source: str, target: str) -> str:
    """``docker tag SOURCE TARGET``: point the name ``target`` at the image ``source``
    names (moving it if it named another image). Returns the stored name."""
    if parse(target, default_tag=True).digest:
        raise InvalidInput("refusing to create a tag with a digest reference")
    return store.tag(find_image(store, source), target)


# =========================================================================== rmi
def _is_id_reference(ref: str, image_id: str) -> bool:
    """Did the user name the image by id (``sha256:abc``, ``abc``)? Docker's
    ``isImageIDPrefix``."""
    hexpart = ref[7:] if ref.startswith("sha256:") else ref
    return bool(hexpart) and image_id[7:].startswith(hexpart)


def remove_image(store: Store, ref: str, containers_using: ContainersUsing,
                 force: bool = False) -> list[dict]:
    """Docker's ``ImageDelete``, step by step. Returns ``[{"Untagged": name}, ...,
    {"Deleted": id}, ...]`` in the order it happened.

    - by name: untag it; if the image has other tags, that is all. If that was the
      last tag, the image goes too -- unless a container uses it (refused without -f;
      with -f the image stays, untagged).
    - by id: refused when tags from several repositories point at it (unless -f);
      otherwise every tag is removed and the image deleted, unless a container uses
      it (refused without -f; with -f the image stays, untagged, so that the
      container keeps its layers).
    """
    done: list[dict] = []
    image_id = find_image(store, ref)
    users = containers_using(image_id)
    running = [cid for cid, is_running in users if is_running]
    tags = store.tags_of(image_id)
    by_name = not _is_id_reference(ref, image_id) or (
        ref in tags or normalised(ref) in tags)
    if by_name:
        key = normalised(ref)
        if key not in tags:
            raise NotFound(f"No such image: {key}")
        if len(tags) == 1 and users and not force:
            raise Conflict(f'conflict: unable to remove repository reference "{ref}" '
                           f"(must force) - container {users[0][0][:12]} is using its "
                           f"referenced image {short_id(image_id)}")
        store.untag(key)
        done.append({"Untagged": key})
        remaining = [t for t in tags if t != key]
        same_repo = [t for t in remaining if repo_of(t) == repo_of(key)]
        if same_repo and all("@" in t for t in same_repo):
            # Docker: with the repository's last tag gone, its digest references
            # (name@sha256:..., from a pull) go too.
            for digest_ref in same_repo:
                store.untag(digest_ref)
                done.append({"Untagged": digest_ref})
                remaining.remove(digest_ref)
        if remaining or users:
            return done
    else:
        repositories = {repo_of(t) for t in tags}
        if len(repositories) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           "forced) - image is referenced in multiple repositories")
        if running:
            # Docker's "hard" conflict: not even -f removes an image a running
            # container is using.
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (cannot be "
                           f"forced) - image is being used by running container "
                           f"{running[0][:12]}")
        if users and not force:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           f"forced) - image is being used by stopped container "
                           f"{users[0][0][:12]}")
        for key in tags:
            store.untag(key)
            done.append({"Untagged": key})
        if users:
            return done
    done += [{"Deleted": removed} for removed in store.delete_image(image_id)]
    return done


# =========================================================================== prune
def prune_images(store: Store, containers_using: ContainersUsing,
                 all_images: bool = False) -> dict:
    """Docker's ``ImagesPrune``: remove dangling images (untagged), or with
    ``all_images`` every image no container uses; then garbage-collect unreferenced
    blobs and layers. Returns ``{"ImagesDeleted": [{"Untagged": ...} / {"Deleted":
    ...}], "SpaceReclaimed": bytes}``."""
    done: list[dict] = []
    reclaimed = 0
    images = store.list_images()
    # Without -a, like Docker: only *dangling* images, i.e. untagged and not the
    # parent of another image (a build's intermediate steps are its cache).
    keep = set() if all_images else intermediate_ids(store, images)
    for image in images:
        if (image["tags"] and not all_images) or image["id"] in keep:
            continue
        if containers_using(image["id"]):
            continue
        reclaimed_before = _layer_bytes(store)
        for key in image["tags"]:
            store.untag(key)
            done.append({"Untagged": key})
        try:
            removed = store.delete_image(image["id"])
        except NotFound:
            continue  # someone else removed it meanwhile
        done += [{"Deleted": r} for r in removed]
        reclaimed += max(0, reclaimed_before - _layer_bytes(store))
    _, freed = store.collect_garbage()
    reclaimed += freed
    return {"ImagesDeleted": done, "SpaceReclaimed": reclaimed}


def _layer_bytes(store: Store) -> int:
    """The size of every extracted layer the store has (``layerdb/<diff_id>.json``)."""
    total = 0
    try:
        names = os.listdir(store.layerdb_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.endswith(".json"):
            total += store.layer_size("sha256:" + name[:-5])
    return total
