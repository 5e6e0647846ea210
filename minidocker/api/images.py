"""The image endpoints: list, inspect, history, tag, remove, prune, save and load.

Each handler asks the image layer the same question the CLI asks (the rows of
``images``, ``history``, ``inspect``: :mod:`minidocker.image.describe`; Docker's rules
for ``tag``/``rmi``/``prune``: :mod:`minidocker.image.tags` through
:mod:`minidocker.engine.images`, which knows the containers; ``save``/``load``:
:mod:`minidocker.image.save`, :mod:`minidocker.image.load`) and answers in the Engine API's shapes (moby's
``api/types``: ``ImageSummary``, ``ImageInspect``, ``HistoryResponseItem``,
``ImageDeleteResponseItem``, ``ImagesPruneReport``). Times are Unix seconds in lists
and history, RFC 3339 in inspect, as Docker sends them.

Pull, push and import (``POST /images/create``) are in
:mod:`minidocker.api.distribution`; build in :mod:`minidocker.api.build`.
"""

from __future__ import annotations

import os
import threading

from .. import clock
from ..errors import InvalidInput
from .http import ApiError, JsonStream, RawStream, json_response, no_content
from .router import route

#: the filters ``GET /images/json`` knows (moby's ``acceptedImageFilterTags``)
LIST_FILTERS = ("dangling", "label", "before", "since", "reference")

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _store():
    from ..image.store import Store
    return Store()


def _unix(created: str) -> int:
    t = clock.parse(created)
    return int(t) if t is not None else 0


def _check_filters(filters: dict, accepted) -> None:
    for key in filters:
        if key not in accepted:
            raise InvalidInput(f"Invalid filter '{key}'")


def _label_match(labels: dict, wanted: list[str]) -> bool:
    """Docker's ``MatchKVList``: every ``key`` / ``key=value`` given must match."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


# ------------------------------------------------------------------------------- list
def image_summaries(store, all_images: bool = False, filters: dict | None = None) -> list[dict]:
    """``GET /images/json``: one ``ImageSummary`` per image (the CLI splits it into a
    row per tag), newest first."""
    from ..image import describe
    filters = filters or {}
    _check_filters(filters, LIST_FILTERS)
    dangling = None
    if filters.get("dangling"):
        value = filters["dangling"][-1].lower()
        if value not in ("true", "false", "1", "0"):
            raise InvalidInput(f"Invalid filter 'dangling={filters['dangling'][-1]}'")
        dangling = value in ("true", "1")
    bounds = {}
    for key in ("before", "since"):
        if filters.get(key):
            ref = filters[key][-1]
            bounds[key] = clock.parse(store.image_config(describe.find_image(store, ref))
                                      .get("created", "")) or 0
    images = store.list_images()
    hidden = set() if all_images else describe.intermediate_ids(store, images)
    out = []
    for image in images:
        if image["id"] in hidden:
            continue
        keys = image["tags"]
        if dangling is not None and (not keys) != dangling:
            continue
        created = clock.parse(image["created"]) or 0
        if "before" in bounds and not created < bounds["before"]:
            continue
        if "since" in bounds and not created > bounds["since"]:
            continue
        config = store.image_config(image["id"])
        labels = (config.get("config") or {}).get("Labels") or {}
        if filters.get("label") and not _label_match(labels, filters["label"]):
            continue
        if filters.get("reference"):
            keys = [k for k in keys if any(describe._matches_repository(k, p)
                                           for p in filters["reference"])]
            if not keys:
                continue
        tags = [k for k in keys if "@" not in k]
        digests = [k for k in keys if "@" in k]
        if not image["tags"]:
            # moby's placeholders for an image with no name
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        out.append({
            "Id": image["id"], "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
            "Created": _unix(image["created"]), "Size": image["size"],
            "VirtualSize": image["size"], "SharedSize": -1, "Labels": labels or None,
            "Containers": -1,
        })
    return out


@route("GET", "/images/json")
def list_images(req):
    store = _store()
    filters = req.query_filters()
    # the old ``filter=busybox`` parameter (API < 1.28 clients) is a reference filter
    if req.query_str("filter"):
        filters.setdefault("reference", []).append(req.query_str("filter"))
    return json_response(image_summaries(store, req.query_bool("all"), filters))


# ---------------------------------------------------------------------------- inspect
def image_inspect(store, ref: str) -> dict:
    """``GET /images/{name}/json``: Docker's ``ImageInspect``, from the same record
    ``minidocker image inspect`` prints."""
    from ..image import describe
    image_id = describe.find_image(store, ref)
    doc = describe.inspect_image(store, image_id)
    config = dict(doc.get("Config") or {})
    # Fields Docker always has in an image's config; clients index them blindly.
    for key, empty in (("Hostname", ""), ("Domainname", ""), ("User", ""),
                       ("AttachStdin", False), ("AttachStdout", False), ("AttachStderr", False),
                       ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
                       ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None),
                       ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None),
                       ("Labels", None)):
        config.setdefault(key, empty)
    doc["Config"] = config
    # The build container's config, in Docker; compose reads its Volumes.
    doc.setdefault("Container", "")
    doc.setdefault("ContainerConfig", dict(config))
    doc.setdefault("DockerVersion", "")
    doc["VirtualSize"] = doc.get("Size", 0)
    doc.pop("Manifest", None)
    # Go clients parse these as times: an unknown one is Go's zero time, not "".
    doc["Created"] = doc.get("Created") or GO_ZERO_TIME
    doc["Metadata"] = {"LastTagTime": (doc.get("Metadata") or {}).get("LastTagTime")
                       or GO_ZERO_TIME}
    return doc


@route("GET", "/images/{name:path}/json")
def inspect(req):
    return json_response(image_inspect(_store(), req.params["name"]))


@route("GET", "/images/{name:path}/history")
def history(req):
    """``docker history``: newest first; ``<missing>`` for the rows that are not an
    image of their own (all but the top, here), the top row's tags."""
    from ..image import describe
    store = _store()
    image_id = describe.find_image(store, req.params["name"])
    tags = [t for t in store.tags_of(image_id) if "@" not in t]
    out = []
    for row in describe.history_rows(store, image_id):
        out.append({"Id": row["id"] or "<missing>", "Created": _unix(row["created"]),
                    "CreatedBy": row["created_by"], "Tags": tags if row["id"] else None,
                    "Size": row["size"], "Comment": row["comment"]})
    return json_response(out)


# ---------------------------------------------------------------------------- tag, rm
@route("POST", "/images/{name:path}/tag")
def tag(req):
    """``docker tag SRC REPO[:TAG]``: the CLI sends ``repo`` and ``tag`` apart."""
    from ..image import tags
    repo = req.query_str("repo")
    if not repo:
        raise InvalidInput("repository name must have at least one component")
    target = repo
    tag_ = req.query_str("tag")
    if tag_:
        target = f"{repo}:{tag_}"
    tags.tag_image(_store(), req.params["name"], target)
    return no_content(201)


@route("DELETE", "/images/{name:path}")
def remove(req):
    """``docker rmi [-f] NAME``: ``[{"Untagged": ...}, {"Deleted": ...}]``; Docker's
    conflicts are 409s. (``noprune`` keeps untagged parents in Docker; minidocker's
    images have no parent chain, so there is nothing it would keep.)"""
    from ..engine import images
    return json_response(images.remove_image(req.params["name"], force=req.query_bool("force")))


@route("POST", "/images/prune")
def prune(req):
    """``docker image prune [-a]``: the CLI sends ``dangling=false`` for ``-a``."""
    from ..engine import images
    filters = req.query_filters()
    _check_filters(filters, ("dangling", "until", "label"))
    if filters.get("until") or filters.get("label"):
        raise InvalidInput("minidocker's image prune takes only the 'dangling' filter")
    dangling = [v.lower() for v in filters.get("dangling", ["true"])]
    if dangling[-1] not in ("true", "false", "1", "0"):
        raise InvalidInput(f"Invalid filter 'dangling={filters['dangling'][-1]}'")
    report = images.prune_images(all_images=dangling[-1] in ("false", "0"))
    report["ImagesDeleted"] = report["ImagesDeleted"] or None
    return json_response(report)


# ------------------------------------------------------------------------ save, load
def _save_stream(store, refs: list[str]):
    """``docker save``: the archive ``minidocker save`` writes, streamed as it is
    written: a thread writes into a pipe, the response reads the other end. A client
    that goes away closes our end; the writer then fails with EPIPE and stops."""
    from ..image import save
    save.images_to_save(store, refs)          # an unknown name: 404 before the 200
    r, w = os.pipe()
    errors = []

    def write():
        try:
            with os.fdopen(w, "wb") as out:
                save.save_images(store, refs, out)
        except BaseException as e:   # noqa: B902 - the stream is cut short instead
            errors.append(e)
    thread = threading.Thread(target=write, name="api-save", daemon=True)
    thread.start()

    def chunks():
        with os.fdopen(r, "rb") as src:
            while True:
                data = src.read(1 << 16)
                if not data:
                    break
                yield data
        thread.join()
        if errors:
            # A tar cut short is what the client notices (a stream cannot become an
            # error reply once it has begun).
            raise errors[0]
    return RawStream(chunks(), content_type="application/x-tar")


@route("GET", "/images/{name:path}/get")
def save_one(req):
    return _save_stream(_store(), [_named(req.params["name"])])


@route("GET", "/images/get")
def save_many(req):
    names = req.query.get("names") or []
    if not names:
        raise InvalidInput('"save" requires at least 1 argument')
    return _save_stream(_store(), [_named(n) for n in names])


def _named(ref: str) -> str:
    """The store's NotFound says "Unable to find image"; the save endpoints say
    Docker's "No such image"."""
    from ..image import describe
    from ..errors import NotFound
    store = _store()
    try:
        store.resolve(ref)
    except NotFound:
        raise NotFound(f"No such image: {describe.display_ref(ref)}") from None
    return ref


@route("POST", "/images/load")
def load(req):
    """``docker load``: the body is the archive; the answer is a JSON stream of
    ``{"stream": "Loaded image: busybox:latest\\n"}`` lines, which the CLI prints."""
    from ..image import load as loader
    store = _store()
    lines = []
    loader.load_archive(store, req.body, say=lines.append)
    return JsonStream({"stream": line + "\n"} for line in lines)
