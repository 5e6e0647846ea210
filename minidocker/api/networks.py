"""The network endpoints: ``/networks`` (list, inspect, create, remove, connect,
disconnect, prune).

The records are the network package's (:mod:`minidocker.network.records`, one JSON
file per network, already in Docker's ``NetworkResource`` shape); creating and removing
is :func:`minidocker.network.create_network` / ``remove_network``, joining and leaving
is the engine's (:mod:`minidocker.engine.endpoints`), as for ``minidocker network``.

docker-compose makes one network per project (``<project>_default``), finds it again by
``GET /networks?filters={"name": [...]}`` and joins its containers to it with aliases
(the service names) in ``EndpointConfig``: that is how ``web`` finds ``db``.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput, NotFound
from .http import ApiError, check_type, json_response, no_content
from .router import route

#: the filters ``GET /networks`` knows (moby's ``acceptedNetworkFilters``)
LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def _match(pattern: str, value: str) -> bool:
    """moby's ``filters.Match``: the value is searched with the pattern as a regular
    expression (so ``name=app`` finds ``app_default``); a bad pattern is a literal."""
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


def _options(rec: dict) -> dict:
    """The driver options the network was created with. The Linux bridge's name is
    minidocker's record of its own choice, not an option a user gave: Docker shows
    it only for the default bridge, and compose would take it for a changed option
    ("needs to be recreated")."""
    from ..network import records as networks
    options = dict(rec.get("Options") or {})
    if rec.get("Name") != networks.DEFAULT_NETWORK:
        options.pop("com.docker.network.bridge.name", None)
    return options


def network_resource(rec: dict, with_containers: bool = True) -> dict:
    """One network in Docker's ``NetworkResource`` shape."""
    from .. import network
    doc = {"Name": rec["Name"], "Id": rec["Id"],
           "Created": rec.get("Created") or "0001-01-01T00:00:00Z",   # Go's zero time
           "Scope": rec.get("Scope", "local"), "Driver": rec.get("Driver", "bridge"),
           "EnableIPv6": rec.get("EnableIPv6", False), "IPAM": rec.get("IPAM"),
           "Internal": rec.get("Internal", False), "Attachable": rec.get("Attachable", False),
           "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
           "Containers": {}, "Options": _options(rec),
           "Labels": rec.get("Labels") or {}}
    if with_containers:
        doc["Containers"] = network.containers_on(rec["Name"])
    return doc


def list_networks(filters: dict) -> list[dict]:
    from ..network import cleanup_stale, records as networks
    for key in filters:
        if key not in LIST_FILTERS:
            raise InvalidInput(f"Invalid filter '{key}'")
    cleanup_stale()
    out = []
    for rec in networks.all_networks():
        builtin = rec["Name"] in networks.PREDEFINED
        if filters.get("name") and not any(_match(p, rec["Name"]) for p in filters["name"]):
            continue
        if filters.get("id") and not any(_match(p, rec["Id"]) for p in filters["id"]):
            continue
        if filters.get("driver") and rec.get("Driver") not in filters["driver"]:
            continue
        if filters.get("scope") and rec.get("Scope", "local") not in filters["scope"]:
            continue
        if filters.get("label") and not _labels_match(rec.get("Labels") or {}, filters["label"]):
            continue
        for kind in filters.get("type", []):
            if kind not in ("custom", "builtin"):
                raise InvalidInput(f"invalid filter: 'type'='{kind}'")
        if filters.get("type") and ("builtin" if builtin else "custom") not in filters["type"]:
            continue
        doc = network_resource(rec)
        if filters.get("dangling"):
            want = filters["dangling"][-1].lower()
            if want not in ("true", "false", "1", "0"):
                raise InvalidInput(f"invalid filter 'dangling={filters['dangling'][-1]}'")
            # dangling: a user-defined network no container is on
            dangling = not builtin and not doc["Containers"]
            if dangling != (want in ("true", "1")):
                continue
        out.append(doc)
    return out


@route("GET", "/networks")
def networks_list(req):
    return json_response(list_networks(req.query_filters()))


@route("GET", "/networks/{id}")
def inspect(req):
    from ..network import records as networks
    return json_response(network_resource(networks.get(req.params["id"])))


@route("POST", "/networks/create")
def create(req):
    """``docker network create`` / compose's project network. minidocker's one driver
    is ``bridge`` with one IPv4 subnet; what it cannot do is refused, not ignored."""
    from .. import network
    from ..network import records as networks
    body = req.json(default={})
    if not isinstance(body, dict):
        raise InvalidInput("invalid JSON: expected an object")
    name = check_type(body.get("Name"), str, "Name")
    if not name:
        raise InvalidInput("network name must be given")
    driver = check_type(body.get("Driver"), str, "Driver") or "bridge"
    if driver != "bridge":
        raise NotFound(f'plugin "{driver}" not found')
    if check_type(body.get("EnableIPv6"), bool, "EnableIPv6"):
        raise InvalidInput("minidocker's networks are IPv4 only (EnableIPv6)")
    options = check_type(body.get("Options"), dict, "Options") or {}
    if options:
        raise InvalidInput(f"minidocker's bridge driver takes no options: {sorted(options)}")
    labels = check_type(body.get("Labels"), dict, "Labels") or {}
    internal = bool(check_type(body.get("Internal"), bool, "Internal"))
    ipam = check_type(body.get("IPAM"), dict, "IPAM") or {}
    if (ipam.get("Driver") or "default") != "default":
        raise NotFound(f'plugin "{ipam["Driver"]}" not found')
    configs = check_type(ipam.get("Config"), list, "IPAM.Config") or []
    if len(configs) > 1:
        raise InvalidInput("minidocker's networks have one IPv4 subnet (IPAM.Config has "
                           f"{len(configs)})")
    subnet = gateway = None
    if configs:
        cfg = check_type(configs[0], dict, "IPAM.Config")
        subnet = check_type(cfg.get("Subnet"), str, "IPAM.Config.Subnet") or None
        gateway = check_type(cfg.get("Gateway"), str, "IPAM.Config.Gateway") or None
        if cfg.get("IPRange") or cfg.get("AuxiliaryAddresses"):
            raise InvalidInput("minidocker's networks take a Subnet and a Gateway, "
                               "no IPRange or AuxiliaryAddresses")
        if gateway and not subnet:
            raise InvalidInput("every ip-range or gateway must have a corresponding subnet")
    if name in networks.PREDEFINED:
        raise ApiError(403, f"{name} is a pre-defined network and cannot be created")
    rec = network.create_network(name, subnet=subnet, gateway=gateway,
                                 labels={str(k): str(v) for k, v in labels.items()},
                                 internal=internal)
    return json_response({"Id": rec["Id"], "Warning": ""}, status=201)


@route("DELETE", "/networks/{id}")
def remove(req):
    from .. import network
    from ..network import records as networks
    rec = networks.get(req.params["id"])
    if rec["Name"] in networks.PREDEFINED:
        raise ApiError(403, f"{rec['Name']} is a pre-defined network and cannot be removed")
    network.cleanup_stale()
    network.remove_network(rec["Name"])
    return no_content()


def _container_ref(body) -> str:
    if not isinstance(body, dict):
        raise InvalidInput("invalid JSON: expected an object")
    ref = check_type(body.get("Container"), str, "Container")
    if not ref:
        raise InvalidInput("no container given")
    return ref


@route("POST", "/networks/{id}/connect")
def connect(req):
    """``docker network connect [--alias A] [--ip IP] NET C``; compose sends its
    service name as an alias."""
    from ..engine import endpoints as engine_networks
    body = req.json(default={})
    ref = _container_ref(body)
    endpoint = check_type(body.get("EndpointConfig"), dict, "EndpointConfig") or {}
    aliases = check_type(endpoint.get("Aliases"), list, "EndpointConfig.Aliases") or []
    ipam = check_type(endpoint.get("IPAMConfig"), dict, "EndpointConfig.IPAMConfig") or {}
    ip = check_type(ipam.get("IPv4Address"), str, "IPAMConfig.IPv4Address") or None
    if ipam.get("IPv6Address"):
        raise InvalidInput("minidocker's networks are IPv4 only (IPv6Address)")
    engine_networks.connect(ref, req.params["id"], aliases=[str(a) for a in aliases], ip=ip)
    return no_content(200)


@route("POST", "/networks/{id}/disconnect")
def disconnect(req):
    from ..engine import endpoints as engine_networks
    body = req.json(default={})
    ref = _container_ref(body)
    force = bool(check_type(body.get("Force"), bool, "Force"))
    engine_networks.disconnect(ref, req.params["id"], force=force)
    return no_content(200)


@route("POST", "/networks/prune")
def prune(req):
    from .. import network
    filters = req.query_filters()
    for key in filters:
        if key not in ("until", "label"):
            raise InvalidInput(f"Invalid filter '{key}'")
    if filters:
        raise InvalidInput("minidocker's network prune takes no filters")
    return json_response({"NetworksDeleted": network.prune_networks() or None})
