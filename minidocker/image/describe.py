"""What ``images``, ``history`` and ``image inspect`` report, as data.

Docker decides here which rows an image list has (one per tag, ``<none>`` for an
untagged image, intermediate build steps hidden), what ``--filter`` means, what a
history row is and which fields ``inspect`` shows. The command line prints these rows
(columns, "4 minutes ago", "2.05MB"); the Engine API's ``GET /images/json``,
``GET /images/{name}/history`` and ``GET /images/{name}/json`` return the same facts.
Nothing here writes to the store.
"""

from __future__ import annotations

import fnmatch

from ..errors import InvalidInput, NotFound
from .reference import familiar, split_familiar
from .store import Store, normalize_name

NONE = "<none>"


# =========================================================================== names
def find_image(store: Store, ref: str) -> str:
    """The image id ``ref`` names, or ``NotFound("No such image: busybox:latest")``:
    the wording of ``rmi``, ``tag``, ``history`` (``run`` says "Unable to find image")."""
    try:
        return store.resolve(ref)
    except NotFound:
        raise NotFound(f"No such image: {display_ref(ref)}") from None


def display_ref(ref: str) -> str:
    """How Docker names a missing image in "No such image: X": a name gets its tag."""
    try:
        return familiar(ref)
    except InvalidInput:
        return ref


def normalised(ref: str) -> str:
    """``ref`` as the store keys tags (``busybox`` -> ``busybox:latest``), or as it is
    when it is no valid name (an id)."""
    try:
        return normalize_name(ref)
    except InvalidInput:
        return ref


def repo_of(key: str) -> str:
    """The repository of a stored tag: ``busybox:latest`` -> ``busybox``."""
    return split_familiar(key)[0]


# =========================================================================== images
def intermediate_ids(store: Store, images: list[dict]) -> set[str]:
    """Untagged images whose layers are a strict prefix of another image's: the steps a
    build leaves behind. ``docker images`` hides them unless ``-a``, and ``image prune``
    keeps them (they are the build cache)."""
    chains = {i["id"]: store.image_diff_ids(i["id"]) for i in images}
    hidden = set()
    for image in images:
        if image["tags"]:
            continue
        mine = chains[image["id"]]
        for other, theirs in chains.items():
            if other != image["id"] and len(theirs) > len(mine) and theirs[:len(mine)] == mine:
                hidden.add(image["id"])
                break
    return hidden


def parse_filters(filters) -> dict[str, list[str]]:
    """``images --filter name=value`` options -> ``{name: [value, ...]}``; the names
    ``docker images`` knows here are ``dangling`` and ``reference``."""
    out: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise InvalidInput(f"bad format of filter (expected name=value): {f}")
        if key not in ("dangling", "reference"):
            raise InvalidInput(f"invalid filter '{key}'")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"invalid filter 'dangling={value}'")
        out.setdefault(key, []).append(value)
    return out


def _matches_repository(key: str, wanted: str) -> bool:
    """``docker images busybox`` / ``busybox:1.36`` / ``john1/*``: compare with the
    familiar repository (and tag, if given)."""
    repo, tag = split_familiar(key)
    want_repo, want_tag = split_familiar(wanted)
    if not fnmatch.fnmatchcase(repo, want_repo):
        return False
    return not want_tag or fnmatch.fnmatchcase(tag, want_tag)


def _display_keys(keys: list[str]) -> list[tuple[str | None, str | None]]:
    """(reference, digest) per row, as ``docker images`` groups them: one row per tag;
    a digest reference (``repo@sha256:...``) gets a row of its own only when its
    repository has no tag on this image (else it is that row's DIGEST)."""
    if not keys:
        return [(None, None)]
    digests = {repo_of(k): split_familiar(k)[1] for k in keys if "@" in k}
    tagged = {repo_of(k) for k in keys if "@" not in k}
    rows = [(k, digests.get(repo_of(k))) for k in keys if "@" not in k]
    rows += [(k, split_familiar(k)[1]) for k in keys if "@" in k and repo_of(k) not in tagged]
    return rows


def image_rows(store: Store, all_images: bool = False, repository: str | None = None,
               filters: dict[str, list[str]] | None = None) -> list[dict]:
    """Rows of ``docker images``: one per tag, ``<none>`` for an untagged image;
    ``dict(repository, tag, id, digest, created, size)``, newest first."""
    filters = filters or {}
    images = store.list_images()
    hidden = set() if all_images else intermediate_ids(store, images)
    rows = []
    for image in images:
        if image["id"] in hidden:
            continue
        dangling = not image["tags"]
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            if dangling != want:
                continue
        for key, digest in _display_keys(image["tags"]):
            if repository and (key is None or not _matches_repository(key, repository)):
                continue
            if "reference" in filters and (key is None or not any(
                    _matches_repository(key, p) for p in filters["reference"])):
                continue
            repo, tag = split_familiar(key) if key else (NONE, NONE)
            if key and "@" in key:
                tag = NONE  # a digest reference has no tag
            rows.append({"repository": repo, "tag": tag, "id": image["id"],
                         "digest": digest or NONE,
                         "created": image["created"], "size": image["size"]})
    return rows


# =========================================================================== history
def history_rows(store: Store, image_id: str) -> list[dict]:
    """One row per history entry, newest first: ``dict(id, created, created_by,
    comment, size)``; a row that made a layer gets its size, only the top row the id."""
    config = store.image_config(image_id)
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    entries = list(config.get("history") or [])
    if not entries:
        entries = [{"created": config.get("created", "")} for _ in diff_ids]
    rows = []
    layer = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer") and layer < len(diff_ids):
            size = store.layer_size(diff_ids[layer])
            layer += 1
        rows.append({"created": entry.get("created", ""),
                     "created_by": entry.get("created_by", ""),
                     "comment": entry.get("comment", ""), "size": size})
    rows.reverse()
    for i, row in enumerate(rows):
        row["id"] = image_id if i == 0 else None
    return rows


# =========================================================================== inspect
def inspect_image(store: Store, image_id: str) -> dict:
    """What ``docker image inspect`` shows, from our records."""
    config = store.image_config(image_id)
    manifest = store.image_manifest(image_id)
    tags = store.tags_of(image_id)
    history = config.get("history") or []
    return {
        "Id": image_id,
        "RepoTags": [t for t in tags if "@" not in t],
        "RepoDigests": [t for t in tags if "@" in t],
        "Parent": "",
        "Comment": (history[-1].get("comment", "") if history else ""),
        "Created": config.get("created", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config", {}),
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": store.image_size(image_id),
        "RootFS": {"Type": config.get("rootfs", {}).get("type", "layers"),
                   "Layers": list(config.get("rootfs", {}).get("diff_ids", []))},
        "Manifest": {"mediaType": manifest.get("mediaType"),
                     "layers": manifest.get("layers", [])},
        # Where the layers are on disk, top-most first, as overlayfs' lowerdir wants
        # them (Docker shows its overlay2 directories here too).
        "GraphDriver": {"Name": "overlay",
                        "Data": {"LowerDir": ":".join(reversed(store.layer_dirs(image_id)))}},
        "Metadata": {"LastTagTime": ""},
    }
