"""``/containers/...``: Docker's container endpoints over the engine's functions.

What ``docker run -it --rm busybox sh`` says to the daemon, in order::

    POST /containers/create            {"Image": "busybox", "Cmd": ["sh"], "Tty": true, ...}
    POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1    -> 101, raw bytes
    POST /containers/{id}/wait?condition=removed    (headers now, the exit code at the end)
    POST /containers/{id}/start
    POST /containers/{id}/resize?h=24&w=80

Each handler turns its request into the arguments of the same engine function the
``minidocker`` CLI calls (:mod:`minidocker.engine.create`, ``.lifecycle``, ``.commit``,
``.cp``, ``.stats``), and the result into Docker's JSON. Errors keep Docker's codes and
wording: 404 "No such container: X", 409 for a conflict, 400 for bad input.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time

from ..errors import Conflict, InvalidInput, MinidockerError, NotFound
from .http import (RAW_STREAM, ApiError, Hijack, JsonStream, RawStream, Response,
                   check_type, json_response, no_content)
from .router import route
from .streams import AttachSession, PENDING, log_frames

ZERO_TIME = "0001-01-01T00:00:00Z"


def _store():
    from ..image.store import Store
    return Store()


def _resolve(ref: str):
    from ..engine.containers import resolve
    from ..engine.lifecycle import reconcile
    return reconcile(resolve(ref))


# ============================================================================ create
def _str_list(value, name: str) -> list[str]:
    """A JSON field that Docker takes as a string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    check_type(value, list, name)
    for item in value:
        check_type(item, str, name)
    return list(value)


def _port_bindings(bindings, name="HostConfig.PortBindings") -> list[str]:
    """``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`` -> ``-p`` strings."""
    out = []
    check_type(bindings, dict, name)
    for port, entries in (bindings or {}).items():
        for entry in entries or [{}]:
            check_type(entry, dict, name)
            ip = entry.get("HostIp") or ""
            host_port = check_type(entry.get("HostPort"), str, name) or ""
            out.append(f"{ip}:{host_port}:{port}" if ip else
                       (f"{host_port}:{port}" if host_port else port))
    return out


def _mount_spec(m: dict) -> str:
    check_type(m, dict, "HostConfig.Mounts")
    parts = [f"type={m.get('Type') or 'volume'}"]
    if m.get("Source"):
        parts.append(f"source={m['Source']}")
    if not m.get("Target"):
        raise InvalidInput("invalid mount config: target is required")
    parts.append(f"target={m['Target']}")
    if m.get("ReadOnly"):
        parts.append("readonly")
    return ",".join(parts)


def create_options(body: dict, name: str | None) -> tuple[str, list[str] | None, dict]:
    """Docker's create body (Config + HostConfig + NetworkingConfig) -> the engine's
    ``create_container(image, cmd, opts)`` arguments, the same opts as the CLI's flags."""
    check_type(body, dict, "body")
    image = check_type(body.get("Image"), str, "Image")
    if not image:
        raise InvalidInput("No image specified: Config.Image is empty")
    host = check_type(body.get("HostConfig"), dict, "HostConfig") or {}
    net = check_type(body.get("NetworkingConfig"), dict, "NetworkingConfig") or {}
    cmd = _str_list(body.get("Cmd"), "Cmd") or None
    opts: dict = {"name": name or None, "pull": "never"}
    if body.get("Entrypoint") is not None:
        opts["entrypoint"] = _str_list(body["Entrypoint"], "Entrypoint")
    opts["env"] = _str_list(body.get("Env"), "Env")
    opts["workdir"] = check_type(body.get("WorkingDir"), str, "WorkingDir") or None
    if body.get("User"):
        opts["user"] = check_type(body["User"], str, "User")
    opts["hostname"] = check_type(body.get("Hostname"), str, "Hostname") or None
    opts["tty"] = bool(check_type(body.get("Tty"), bool, "Tty"))
    opts["interactive"] = bool(check_type(body.get("OpenStdin"), bool, "OpenStdin"))
    opts["stdin_once"] = bool(check_type(body.get("StdinOnce"), bool, "StdinOnce"))
    opts["attach_stdout"] = bool(check_type(body.get("AttachStdout"), bool, "AttachStdout"))
    opts["attach_stderr"] = bool(check_type(body.get("AttachStderr"), bool, "AttachStderr"))
    opts["detach"] = not check_type(body.get("AttachStdin"), bool, "AttachStdin")
    labels = check_type(body.get("Labels"), dict, "Labels") or {}
    opts["label"] = [f"{k}={check_type(v, str, 'Labels')}" for k, v in labels.items()]
    opts["expose"] = list((check_type(body.get("ExposedPorts"), dict, "ExposedPorts") or {}).keys())
    opts["stop_signal"] = check_type(body.get("StopSignal"), str, "StopSignal") or None
    opts["stop_timeout"] = check_type(body.get("StopTimeout"), int, "StopTimeout")
    # -- HostConfig
    opts["volume"] = _str_list(host.get("Binds"), "HostConfig.Binds")
    opts["mount"] = [_mount_spec(m) for m in check_type(host.get("Mounts"), list, "HostConfig.Mounts") or []]
    opts["publish"] = _port_bindings(host.get("PortBindings"))
    opts["publish_all"] = bool(check_type(host.get("PublishAllPorts"), bool, "HostConfig.PublishAllPorts"))
    mode = check_type(host.get("NetworkMode"), str, "HostConfig.NetworkMode") or "bridge"
    opts["network"] = "bridge" if mode == "default" else mode
    opts["link"] = _str_list(host.get("Links"), "HostConfig.Links")
    opts["rm"] = bool(check_type(host.get("AutoRemove"), bool, "HostConfig.AutoRemove"))
    policy = check_type(host.get("RestartPolicy"), dict, "HostConfig.RestartPolicy") or {}
    if (policy.get("Name") or "no") != "no":
        raise InvalidInput(f"restart policy {policy['Name']!r} is not supported by minidocker "
                           "(only \"no\")")
    memory = check_type(host.get("Memory"), int, "HostConfig.Memory")
    opts["memory"] = str(memory) if memory else None
    nano = check_type(host.get("NanoCpus"), int, "HostConfig.NanoCpus") or 0
    quota = check_type(host.get("CpuQuota"), int, "HostConfig.CpuQuota") or 0
    period = check_type(host.get("CpuPeriod"), int, "HostConfig.CpuPeriod") or 100000
    if nano and quota:
        raise InvalidInput("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano:
        opts["cpus"] = str(nano / 1e9)
    elif quota > 0:
        opts["cpus"] = str(quota / period)
    pids = check_type(host.get("PidsLimit"), int, "HostConfig.PidsLimit")
    opts["pids_limit"] = pids if pids and pids > 0 else None
    opts["privileged"] = bool(check_type(host.get("Privileged"), bool, "HostConfig.Privileged"))
    opts["cap_add"] = _str_list(host.get("CapAdd"), "HostConfig.CapAdd")
    opts["cap_drop"] = _str_list(host.get("CapDrop"), "HostConfig.CapDrop")
    opts["security_opt"] = _str_list(host.get("SecurityOpt"), "HostConfig.SecurityOpt")
    opts["add_host"] = _str_list(host.get("ExtraHosts"), "HostConfig.ExtraHosts")
    if _str_list(host.get("Dns"), "HostConfig.Dns"):
        raise InvalidInput("HostConfig.Dns is not supported by minidocker")
    opts["read_only"] = bool(check_type(host.get("ReadonlyRootfs"), bool, "HostConfig.ReadonlyRootfs"))
    tmpfs = check_type(host.get("Tmpfs"), dict, "HostConfig.Tmpfs") or {}
    opts["tmpfs"] = [f"{path}:{o}" if o else path for path, o in tmpfs.items()]
    opts["volumes_from"] = _str_list(host.get("VolumesFrom"), "HostConfig.VolumesFrom")
    runtime = check_type(host.get("Runtime"), str, "HostConfig.Runtime")
    if runtime:
        opts["runtime"] = runtime
    endpoints = check_type(net.get("EndpointsConfig"), dict, "NetworkingConfig.EndpointsConfig")
    if endpoints:
        listed = []
        for net_name, settings in endpoints.items():
            settings = check_type(settings, dict, "NetworkingConfig.EndpointsConfig") or {}
            entry = {"Network": net_name}
            aliases = _str_list(settings.get("Aliases"), "Aliases")
            if aliases:
                entry["Aliases"] = aliases
            ipam = settings.get("IPAMConfig") or {}
            if isinstance(ipam, dict) and ipam.get("IPv4Address"):
                entry["IPAMConfig"] = {"IPv4Address": ipam["IPv4Address"]}
            listed.append(entry)
        # the network named by NetworkMode comes first (it becomes eth0)
        listed.sort(key=lambda e: e["Network"] != opts["network"])
        if listed[0]["Network"] == opts["network"] and opts["network"] not in ("bridge", "host", "none"):
            opts["endpoints"] = listed
        elif any(e.get("Aliases") for e in listed):
            opts["endpoints"] = listed
    return image, cmd, opts


@route("POST", "/containers/create")
def create(req):
    from ..engine.create import create_container
    body = req.json(default=None)
    if body is None:
        raise ApiError(400, "Config cannot be empty in order to create a container")
    image, cmd, opts = create_options(body, req.query_str("name"))
    store = _store()
    try:
        store.resolve(image)
    except NotFound:
        raise NotFound(f"No such image: {_familiar(image)}") from None
    c = create_container(store, image, cmd, opts)
    return json_response({"Id": c.id, "Warnings": []}, status=201)


def _familiar(image: str) -> str:
    try:
        from ..image.reference import familiar
        name = familiar(image)
    except Exception:
        name = image
    return name if ":" in name.rsplit("/", 1)[-1] or "@" in name else f"{name}:latest"


# ============================================================================ inspect
def _network_settings(c) -> dict:
    settings = dict(c.state.get("NetworkSettings") or {})
    defaults = {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
                "SandboxKey": "", "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "MacAddress": "", "Networks": {}}
    for k, v in defaults.items():
        settings.setdefault(k, v)
    if not settings["Networks"] and not c.state["State"].get("Running"):
        # a stopped container is still "on" its networks (with no address), as in Docker
        from ..network import endpoints_config
        try:
            configured = endpoints_config(c.state)
        except Exception:
            configured = {}
        settings["Networks"] = {
            name: {"IPAMConfig": cfg.get("IPAMConfig"), "Links": None,
                   "Aliases": cfg.get("Aliases"), "NetworkID": "", "EndpointID": "",
                   "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                   "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
                   "DriverOpts": None}
            for name, cfg in configured.items() if name not in ("none",)}
    if not settings["Ports"]:
        exposed = (c.state.get("Config") or {}).get("ExposedPorts") or {}
        settings["Ports"] = {port: None for port in exposed} if c.state["State"].get("Running") else {}
    return settings


def inspect_container(c) -> dict:
    """``docker inspect`` of a container: state.json in Docker's full shape."""
    st = c.state
    state = dict(st["State"])
    state.setdefault("Paused", False)
    state.update(Restarting=False, Dead=False)
    if state.get("Status") == "paused":
        state["Running"] = True
    state["StartedAt"] = state.get("StartedAt") or ZERO_TIME
    state["FinishedAt"] = state.get("FinishedAt") or ZERO_TIME
    host = dict(st.get("HostConfig") or {})
    host.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
    host.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    host.setdefault("Dns", [])
    host.setdefault("DnsOptions", [])
    host.setdefault("DnsSearch", [])
    host.setdefault("ExtraHosts", None)
    host.setdefault("ShmSize", 67108864)
    host.setdefault("CpuShares", 0)
    host.setdefault("CpuPeriod", 0)
    host.setdefault("CpuQuota", 0)
    host.setdefault("MemorySwap", 0)
    host.setdefault("Init", None)
    host.setdefault("ConsoleSize", [0, 0])
    config = dict(st.get("Config") or {})
    config.setdefault("Domainname", "")
    config.setdefault("AttachStdout", False)
    config.setdefault("AttachStderr", False)
    config.setdefault("StdinOnce", False)
    config.setdefault("OnBuild", None)
    return {
        "Id": c.id,
        "Created": st.get("Created"),
        "Path": st.get("Path"),
        "Args": st.get("Args") or [],
        "State": state,
        "Image": st.get("Image"),
        "ResolvConfPath": os.path.join(c.dir, "resolv.conf"),
        "HostnamePath": os.path.join(c.dir, "hostname"),
        "HostsPath": os.path.join(c.dir, "hosts"),
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": int(st.get("RestartCount") or 0),
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "UpperDir": c.upper_dir, "WorkDir": c.work_dir, "MergedDir": c.rootfs}},
        "Mounts": st.get("Mounts") or [],
        "Config": config,
        "NetworkSettings": _network_settings(c),
    }


@route("GET", "/containers/{id}/json")
def inspect(req):
    c = _resolve(req.params["id"])
    result = inspect_container(c)
    if req.query_bool("size"):
        result["SizeRw"], result["SizeRootFs"] = _sizes(c)
    return json_response(result)


# ============================================================================ list
def _status_text(c) -> str:
    from ..clock import parse, since
    from ..units import human_duration
    st = c.state["State"]
    if st["Running"] or st.get("Status") == "paused":
        text = f"Up {human_duration(since(st['StartedAt']))}"
        return text + " (Paused)" if st.get("Paused") else text
    if st["Status"] == "created":
        return "Created"
    finished = f"{human_duration(since(st['FinishedAt']))} ago" if parse(st["FinishedAt"]) else ""
    return f"Exited ({st['ExitCode']}) {finished}"


def _ports_list(c) -> list[dict]:
    ports = (c.state.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    for spec, bindings in sorted(ports.items()):
        number, _, proto = spec.partition("/")
        if bindings:
            for b in bindings:
                out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(number),
                            "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
        else:
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    if not ports:
        for spec in sorted((c.state.get("Config") or {}).get("ExposedPorts") or {}):
            number, _, proto = spec.partition("/")
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    return out


def _du(path: str) -> int:
    total = 0
    for base, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def _sizes(c) -> tuple[int, int]:
    rw = _du(c.upper_dir)
    try:
        image = sum(_du(d) for d in _store().layer_dirs(c.image_id))
    except Exception:
        image = 0
    return rw, rw + image


def summary(c, size: bool = False) -> dict:
    """One line of ``docker ps`` (moby's ``types.Container``)."""
    st = c.state
    created = _epoch(st.get("Created"))
    networks = _network_settings(c)["Networks"]
    out = {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": st.get("ImageName") or st.get("Image"),
        "ImageID": st.get("Image"),
        "Command": " ".join([st.get("Path") or "", *(st.get("Args") or [])]).strip(),
        "Created": created,
        "Ports": _ports_list(c),
        "Labels": (st.get("Config") or {}).get("Labels") or {},
        "State": st["State"]["Status"],
        "Status": _status_text(c),
        "HostConfig": {"NetworkMode": (st.get("HostConfig") or {}).get("NetworkMode", "bridge")},
        "NetworkSettings": {"Networks": networks},
        "Mounts": st.get("Mounts") or [],
    }
    if size:
        out["SizeRw"], out["SizeRootFs"] = _sizes(c)
    return out


def _epoch(text: str | None) -> int:
    if not text:
        return 0
    from ..clock import since
    return int(time.time() - since(text))


LIST_FILTERS = {"ancestor", "before", "expose", "exited", "health", "id", "isolation",
                "is-task", "label", "name", "network", "publish", "since", "status", "volume"}


def _matches(c, filters: dict[str, list[str]], store) -> bool:
    import re
    st = c.state
    labels = (st.get("Config") or {}).get("Labels") or {}
    for label in filters.get("label", []):
        key, eq, value = label.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    if filters.get("name") and not any(re.search(p, "/" + c.name) or re.search(p, c.name)
                                       for p in filters["name"]):
        return False
    if filters.get("id") and not any(c.id.startswith(p) for p in filters["id"]):
        return False
    if filters.get("status"):
        bad = set(filters["status"]) - {"created", "restarting", "running", "removing",
                                          "paused", "exited", "dead"}
        if bad:
            raise ApiError(400, f"Invalid filter 'status={bad.pop()}'")
        if st["State"]["Status"] not in filters["status"]:
            return False
    if filters.get("exited"):
        try:
            codes = {int(x) for x in filters["exited"]}
        except ValueError:
            raise ApiError(400, f"invalid filter 'exited={filters['exited'][0]}'") from None
        if st["State"]["Running"] or st["State"]["Status"] == "created" or \
                st["State"]["ExitCode"] not in codes:
            return False
    if filters.get("ancestor"):
        ok = False
        for ref in filters["ancestor"]:
            if ref in (st.get("ImageName"), st.get("Image")) or st.get("Image", "").startswith("sha256:" + ref):
                ok = True
                break
            try:
                if store.resolve(ref) == st.get("Image"):
                    ok = True
                    break
            except MinidockerError:
                pass
        if not ok:
            return False
    if filters.get("network"):
        from ..network import endpoints_config
        try:
            nets = set(endpoints_config(st))
        except Exception:
            nets = set()
        nets |= set(((st.get("NetworkSettings") or {}).get("Networks") or {}))
        if not nets & set(filters["network"]):
            return False
    if filters.get("volume"):
        mounts = st.get("Mounts") or []
        names = {m.get("Name") for m in mounts} | {m.get("Source") for m in mounts} | \
            {m.get("Destination") for m in mounts}
        if not names & set(filters["volume"]):
            return False
    return True


@route("GET", "/containers/json")
def list_containers(req):
    from ..engine.lifecycle import reconcile_all
    filters = req.query_filters()
    unknown = set(filters) - LIST_FILTERS
    if unknown:
        raise ApiError(400, f"Invalid filter '{sorted(unknown)[0]}'")
    limit = req.query_int("limit", -1)
    all_ = req.query_bool("all") or (limit is not None and limit > 0)
    size = req.query_bool("size")
    containers = reconcile_all()                 # newest first
    if filters.get("before") or filters.get("since"):
        containers = _before_since(containers, filters)
    store = _store()
    shown = []
    for c in containers:
        if not all_ and not c.state["State"]["Running"] and not filters.get("status") \
                and not filters.get("exited"):
            continue
        if not _matches(c, filters, store):
            continue
        shown.append(c)
        if limit and limit > 0 and len(shown) >= limit:
            break
    return json_response([summary(c, size) for c in shown])


def _before_since(containers, filters):
    from ..engine.containers import resolve
    out = containers
    for key in ("before", "since"):
        for ref in filters.get(key, []):
            pivot = resolve(ref)
            created = pivot.state["Created"]
            if key == "before":
                out = [c for c in out if c.state["Created"] < created]
            else:
                out = [c for c in out if c.state["Created"] > created]
    return out


# ============================================================================ lifecycle
@route("POST", "/containers/{id}/start")
def start(req):
    from ..engine import lifecycle
    c = _resolve(req.params["id"])
    if c.state["State"]["Running"]:
        return no_content(304)
    sessions = PENDING.take(c.id)
    try:
        lifecycle.start(c, _store(), attach=False, attach_clients=len(sessions),
                        on_listening=lambda: [s.go() for s in sessions])
    except BaseException:
        for s in sessions:
            s.cancel()
        raise
    return no_content()


@route("POST", "/containers/{id}/stop")
def stop(req):
    from ..engine import lifecycle
    c = _resolve(req.params["id"])
    if not c.state["State"]["Running"]:
        return no_content(304)
    timeout = req.query_int("t")
    if timeout is None:
        timeout = c.state["Config"].get("StopTimeout")
    lifecycle.stop(c, 10 if timeout is None else timeout)
    return no_content()


@route("POST", "/containers/{id}/restart")
def restart(req):
    from ..engine import lifecycle
    c = _resolve(req.params["id"])
    timeout = req.query_int("t")
    if timeout is None:
        timeout = c.state["Config"].get("StopTimeout")
    lifecycle.restart(c, _store(), 10 if timeout is None else timeout)
    return no_content()


@route("POST", "/containers/{id}/kill")
def kill(req):
    from ..engine import lifecycle
    c = _resolve(req.params["id"])
    sig = lifecycle.parse_signal(req.query_str("signal") or "KILL")
    try:
        lifecycle.kill(c, sig)
    except Conflict:
        raise Conflict(f"Cannot kill container: {req.params['id']}: Container {c.id} is not running") from None
    return no_content()


@route("POST", "/containers/{id}/pause")
def pause(req):
    from ..engine import lifecycle
    lifecycle.pause(_resolve(req.params["id"]))
    return no_content()


@route("POST", "/containers/{id}/unpause")
def unpause(req):
    from ..engine import lifecycle
    lifecycle.unpause(_resolve(req.params["id"]))
    return no_content()


@route("POST", "/containers/{id}/rename")
def rename(req):
    from ..engine import lifecycle
    name = req.query_str("name")
    if not name:
        raise ApiError(400, "Neither old nor new names may be empty")
    lifecycle.rename(_resolve(req.params["id"]), name)
    return no_content()


@route("DELETE", "/containers/{id}")
def remove(req):
    from ..engine import lifecycle
    c = _resolve(req.params["id"])
    if req.query_bool("link"):
        raise ApiError(400, "links are not removable on their own in minidocker")
    if c.state["State"]["Running"] and not req.query_bool("force"):
        raise Conflict(f"You cannot remove a running container {c.id}. Stop the container "
                       "before attempting removal or force remove")
    lifecycle.remove(c, force=req.query_bool("force"), volumes=req.query_bool("v"))
    return no_content()


@route("POST", "/containers/{id}/wait")
def wait(req):
    """Headers at once, the body when the condition is met: the client starts the
    container only after this answer's headers came back (``docker run``)."""
    from ..engine import lifecycle
    c = _resolve(req.params["id"])
    condition = req.query_str("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f'invalid condition: "{condition}"')

    def result():
        try:
            code = lifecycle.wait_condition(c, condition, cancelled=req.client_gone)
        except InterruptedError:
            return
        yield {"Error": None, "StatusCode": code}
    return JsonStream(result())


@route("GET", "/containers/{id}/top")
def top(req):
    from ..engine import lifecycle
    titles, rows = lifecycle.top(_resolve(req.params["id"]), req.query_str("ps_args") or "-ef")
    return json_response({"Titles": titles, "Processes": rows})


@route("GET", "/containers/{id}/changes")
def changes(req):
    from ..engine.commit import container_diff
    kinds = {"C": 0, "A": 1, "D": 2}
    out = []
    for change in container_diff(_resolve(req.params["id"]), _store()):
        text = str(change)
        kind, _, path = text.partition(" ")
        out.append({"Path": path, "Kind": kinds.get(kind, 0)})
    return json_response(out or None)


@route("POST", "/commit")
def commit(req):
    from ..engine.commit import commit_container
    ref = req.query_str("container")
    if not ref:
        raise ApiError(400, "No container specified")
    c = _resolve(ref)
    body = req.json(default=None) or {}
    check_type(body, dict, "body")
    repo = req.query_str("repo") or ""
    tag = req.query_str("tag") or ""
    repository = f"{repo}:{tag}" if repo and tag else (repo or None)
    changes = []
    for line in req.query.get("changes", []):
        changes += [l for l in line.split("\n") if l.strip()]
    image_id = commit_container(c, repository, message=req.query_str("comment") or "",
                                author=req.query_str("author") or "", changes=changes,
                                pause=req.query_bool("pause", True), store=_store())
    if body:
        _apply_commit_config(image_id, body)
    return json_response({"Id": image_id}, status=201)


def _apply_commit_config(image_id: str, body: dict) -> None:
    """A commit body (a container Config) replaces fields of the new image's config:
    docker-py sends it; the CLI sends ``changes`` instead. Not supported beyond
    the empty config, which is all the clients send by default."""
    meaningful = {k: v for k, v in body.items() if v not in (None, "", [], {}, False)}
    if meaningful:
        raise ApiError(400, "a commit config body is not supported: use changes= (docker commit -c)")


# ============================================================================ logs
@route("GET", "/containers/{id}/logs")
def logs(req):
    c = _resolve(req.params["id"])
    stdout, stderr = req.query_bool("stdout"), req.query_bool("stderr")
    if not (stdout or stderr):
        raise ApiError(400, "You must choose at least one stream")
    tail = req.query_str("tail") or "all"
    if tail != "all":
        try:
            tail_n = int(tail)
        except ValueError:
            raise ApiError(400, f'invalid value for "tail": "{tail}"') from None
        tail = "all" if tail_n < 0 else tail_n
    since = _time_param(req, "since")
    until = _time_param(req, "until")
    tty = bool(c.state["Config"].get("Tty"))
    frames = log_frames(c, stdout=stdout, stderr=stderr, follow=req.query_bool("follow"),
                        timestamps=req.query_bool("timestamps"), tail=tail, since=since,
                        until=until, tty=tty, cancelled=req.client_gone)
    return RawStream(frames, content_type=RAW_STREAM)


def _time_param(req, name: str) -> float | None:
    text = req.query_str(name)
    if not text or text == "0":
        return None
    try:
        return float(text)
    except ValueError:
        from .. import events
        try:
            return events.parse_time(text)
        except Exception:
            raise ApiError(400, f"invalid value for {name}: {text!r}") from None


# ============================================================================ attach
@route("POST", "/containers/{id}/attach")
def attach(req):
    c = _resolve(req.params["id"])
    if c.state["State"].get("Paused"):
        raise Conflict(f"You cannot attach to a paused container, unpause it first")
    session = AttachSession(c, stdin=req.query_bool("stdin"), stdout=req.query_bool("stdout"),
                            stderr=req.query_bool("stderr"), logs=req.query_bool("logs"),
                            stream=req.query_bool("stream"),
                            detach_keys=req.query_str("detachKeys"))
    session.prepare()
    return Hijack(session.run, abort=session.abort)


@route("POST", "/containers/{id}/resize")
def resize(req):
    from ..engine import attach as attach_mod
    c = _resolve(req.params["id"])
    h, w = req.query_int("h"), req.query_int("w")
    if h is None or w is None or h < 0 or w < 0:
        raise ApiError(400, "h and w must be non-negative integers")
    if not c.state["State"]["Running"]:
        raise Conflict(f"Container {c.id} is not running")
    try:
        sock = attach_mod.connect(c, stdin=False, stdout=False, stderr=False)
    except Conflict:
        raise Conflict(f"Container {c.id} is not running") from None
    try:
        attach_mod.send_resize(sock, h, w)
        time.sleep(0)      # the monitor reads both frames from one buffer
    finally:
        sock.close()
    return no_content(200)


# ============================================================================ archive
def _stat_header(stat: dict) -> dict:
    encoded = base64.b64encode(json.dumps(stat).encode()).decode()
    return {"X-Docker-Container-Path-Stat": encoded}


def _archive_path(req) -> str:
    path = req.query_str("path")
    if not path:
        raise ApiError(400, "Path cannot be empty")
    return path


@route("HEAD", "/containers/{id}/archive")
def archive_head(req):
    from ..engine import cp
    c = _resolve(req.params["id"])
    stat = cp.stat_path(c, _archive_path(req), _store())
    return Response(200, b"", _stat_header(stat))


@route("GET", "/containers/{id}/archive")
def archive_get(req):
    from ..engine import cp
    c = _resolve(req.params["id"])
    path = _archive_path(req)
    store = _store()
    stat = cp.stat_path(c, path, store)
    stream = cp.archive_out(c, path, store)
    return RawStream(stream, content_type="application/x-tar", headers=_stat_header(stat))


@route("PUT", "/containers/{id}/archive")
def archive_put(req):
    from ..engine import cp
    c = _resolve(req.params["id"])
    path = _archive_path(req)
    cp.archive_in(c, path, req.body, _store(),
                  no_overwrite_dir_non_dir=req.query_bool("noOverwriteDirNonDir"),
                  copy_uid_gid=req.query_bool("copyUIDGID"))
    return no_content(200)


# ============================================================================ stats
@route("GET", "/containers/{id}/stats")
def stats(req):
    from ..engine import stats as stats_mod
    c = _resolve(req.params["id"])
    stream = req.query_bool("stream", True)
    one_shot = req.query_bool("one-shot")
    if not stream:
        return json_response(stats_mod.sample_pair(c, one_shot=one_shot))

    def samples():
        previous = None
        while True:
            current = stats_mod.sample(c, previous)
            yield current
            if not c.monitor_alive():
                return
            previous = current
            for _ in range(10):
                if req.client_gone():
                    return
                time.sleep(0.1)
    return JsonStream(samples())


# ============================================================================ prune
@route("POST", "/containers/prune")
def prune(req):
    from ..engine import lifecycle
    filters = req.query_filters()
    deleted, reclaimed = [], 0
    for c in lifecycle.reconcile_all():
        if c.state["State"]["Running"]:
            continue
        labels = (c.state.get("Config") or {}).get("Labels") or {}
        ok = True
        for label in filters.get("label", []):
            key, eq, value = label.partition("=")
            if key not in labels or (eq and labels[key] != value):
                ok = False
        if not ok:
            continue
        size = _du(c.upper_dir)
        try:
            lifecycle.remove(c)
        except MinidockerError:
            continue
        deleted.append(c.id)
        reclaimed += size
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


@route("GET", "/containers/{id}/export")
def export(req):
    from ..engine.commit import export_container
    import os as _os
    c = _resolve(req.params["id"])
    r, w = _os.pipe()

    def produce():
        with _os.fdopen(w, "wb") as out:
            try:
                export_container(c, out, _store())
            except Exception:
                pass
    threading.Thread(target=produce, daemon=True).start()

    def chunks():
        with _os.fdopen(r, "rb") as f:
            while True:
                data = f.read(65536)
                if not data:
                    return
                yield data
    return RawStream(chunks(), content_type="application/x-tar")
