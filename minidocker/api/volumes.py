"""The volume endpoints: ``/volumes`` (list, inspect, create, remove, prune).

A volume is a directory under the data root with a ``volume.json`` already in Docker's
shape (:mod:`minidocker.engine.volumes`); these handlers call the functions
``minidocker volume`` calls.

One difference of API versions matters here: before API 1.42 (Docker 23),
``POST /volumes/prune`` removes every unused volume, named ones too; since 1.42 only
anonymous ones unless the filter ``all=true`` is given. A 1.41 client (docker 20.10,
compose 1.29) gets the old rule.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput
from .http import check_type, json_response, no_content
from .router import route

LIST_FILTERS = ("dangling", "driver", "label", "name")


def _match(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return pattern in value


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _volume(rec: dict) -> dict:
    return {"CreatedAt": rec.get("CreatedAt", ""), "Driver": rec.get("Driver", "local"),
            "Labels": rec.get("Labels") or {}, "Mountpoint": rec.get("Mountpoint", ""),
            "Name": rec["Name"], "Options": rec.get("Options") or {},
            "Scope": rec.get("Scope", "local")}


@route("GET", "/volumes")
def list_volumes(req):
    from ..engine import volumes
    filters = req.query_filters()
    for key in filters:
        if key not in LIST_FILTERS:
            raise InvalidInput(f"Invalid filter '{key}'")
    dangling = None
    if filters.get("dangling"):
        value = filters["dangling"][-1].lower()
        if value not in ("true", "false", "1", "0"):
            raise InvalidInput(f"Invalid filter 'dangling={filters['dangling'][-1]}'")
        dangling = value in ("true", "1")
    out = []
    for rec in volumes.list_volumes():
        if filters.get("name") and not any(_match(p, rec["Name"]) for p in filters["name"]):
            continue
        if filters.get("driver") and rec.get("Driver") not in filters["driver"]:
            continue
        if filters.get("label") and not _labels_match(rec.get("Labels") or {}, filters["label"]):
            continue
        if dangling is not None and (not volumes.users(rec["Name"])) != dangling:
            continue
        out.append(_volume(rec))
    return json_response({"Volumes": out, "Warnings": None})


@route("GET", "/volumes/{name}")
def inspect(req):
    from ..engine import volumes
    return json_response(_volume(volumes.inspect(req.params["name"])))


@route("POST", "/volumes/create")
def create(req):
    """``docker volume create`` / compose's named volumes: 201 with the volume (an
    existing one is returned as it is, as Docker does)."""
    from ..engine import volumes
    body = req.json(default={})
    if not isinstance(body, dict):
        raise InvalidInput("invalid JSON: expected an object")
    name = check_type(body.get("Name"), str, "Name") or None
    driver = check_type(body.get("Driver"), str, "Driver") or "local"
    options = check_type(body.get("DriverOpts"), dict, "DriverOpts") or {}
    labels = check_type(body.get("Labels"), dict, "Labels") or {}
    rec = volumes.create(name, labels={str(k): str(v) for k, v in labels.items()},
                         driver=driver, options=options)
    return json_response(_volume(rec), status=201)


@route("DELETE", "/volumes/{name}")
def remove(req):
    from ..engine import volumes
    volumes.remove(req.params["name"], force=req.query_bool("force"))
    return no_content()


@route("POST", "/volumes/prune")
def prune(req):
    from ..engine import volumes
    filters = req.query_filters()
    for key in filters:
        if key not in ("label", "all"):
            raise InvalidInput(f"Invalid filter '{key}'")
    if filters.get("label"):
        raise InvalidInput("minidocker's volume prune takes no label filter")
    everything = req.api_version < (1, 42) or \
        (filters.get("all", ["false"])[-1].lower() in ("true", "1"))
    removed, reclaimed = volumes.prune(all_volumes=everything)
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed})
