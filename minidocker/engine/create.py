"""``docker create``: merge the image's config with the command line into a container record.

Docker's merge rules, which this module follows:

* ``--entrypoint`` replaces the image's ENTRYPOINT *and* drops the image's CMD;
* arguments after the image name replace the image's CMD;
* ``-e KEY=VALUE`` overrides the image's ``ENV KEY``; ``-e KEY`` copies the caller's
  value (and is dropped if the caller has none); ``--env-file`` lines work the same;
* ``-w`` and ``-u`` replace WORKDIR and USER; ``--hostname`` defaults to the short id.
"""

from __future__ import annotations

import os
import sys

from ..errors import InvalidInput, MinidockerError, NotFound
from ..image.reference import familiar
from ..kernel.cgroups import parse_bytes
from . import volumes
from .bundle import read_security_opts
from .containers import Container, new_id, new_record

def parse_env(items, env_files=()) -> list[str]:
    """``-e`` and ``--env-file`` values -> ``KEY=VALUE`` strings, in order."""
    out = []
    lines = []
    for path in env_files:
        try:
            with open(path) as f:
                lines += [l.rstrip("\n") for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise InvalidInput(f"open {path}: {e.strerror.lower()}") from None
    for item in [*lines, *items]:
        key, eq, value = item.partition("=")
        if not key or key.strip() != key.lstrip():
            raise InvalidInput(f"invalid environment variable: {item}")
        if eq:
            out.append(f"{key}={value}")
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Overrides replace same-named variables in place; new ones are appended."""
    result = list(base)
    index = {e.partition("=")[0]: i for i, e in enumerate(result)}
    for e in overrides:
        key = e.partition("=")[0]
        if key in index:
            result[index[key]] = e
        else:
            index[key] = len(result)
            result.append(e)
    return result


def find_image(image_ref: str, store, policy: str = "missing", pull=None, out=sys.stderr) -> str:
    """Resolve ``image_ref`` to an image id, pulling it when it is not here (like Docker's
    ``--pull missing``; ``always`` pulls first, ``never`` never does).

    ``pull(image_ref, store, out=...)`` fetches an image and returns its id: the front
    end passes the registry client's. The engine never talks to a registry itself (the
    layer contracts in pyproject.toml forbid it), so without ``pull`` a missing image
    is simply not found."""
    if policy == "always" and pull is not None:
        return pull(image_ref, store, out=out)
    try:
        return store.resolve(image_ref)
    except NotFound:
        if policy == "never" or pull is None:
            raise
    print(f"Unable to find image '{familiar(image_ref)}' locally", file=out, flush=True)
    return pull(image_ref, store, out=out)


def _parse_publish(values) -> dict:
    """``-p`` values -> ``PortBindings``. The network package (~16-20 ms to import) is
    imported only when there are some: ``run --network none`` need not load it."""
    if not values:
        return {}
    from ..network.ports import parse_publish
    return parse_publish(values)


def _parse_expose(values) -> dict:
    """``--expose`` values -> ``ExposedPorts`` (imported lazily, as :func:`_parse_publish`)."""
    if not values:
        return {}
    from ..network.ports import parse_expose
    return parse_expose(values)


def container_config(image_config: dict, cmd: list[str] | None, opts: dict) -> dict:
    """The ``Config`` section of a new container (Docker's field names)."""
    icfg = image_config.get("config") or {}
    entrypoint = icfg.get("Entrypoint") or []
    image_cmd = icfg.get("Cmd") or []
    if opts.get("entrypoint") is not None:
        # the CLI's --entrypoint is one string; the Engine API's Entrypoint a list
        given = opts["entrypoint"]
        entrypoint = list(given) if isinstance(given, list) else ([given] if given else [])
        image_cmd = []
    command = list(cmd) if cmd else list(image_cmd)
    env = merge_env(icfg.get("Env") or [], parse_env(opts.get("env") or (), opts.get("env_file") or ()))
    exposed = {**(icfg.get("ExposedPorts") or {}), **_parse_expose(opts.get("expose")),
               **{port: {} for port in _parse_publish(opts.get("publish"))}}
    return {
        "Hostname": opts.get("hostname") or "",
        "Env": env,
        "Cmd": command,
        "Entrypoint": entrypoint,
        "WorkingDir": opts.get("workdir") or icfg.get("WorkingDir") or "",
        "User": opts.get("user") if opts.get("user") is not None else icfg.get("User", ""),
        "Tty": bool(opts.get("tty")),
        "OpenStdin": bool(opts.get("interactive")),
        "AttachStdin": bool(opts.get("interactive")) and not opts.get("detach"),
        "AttachStdout": opts.get("attach_stdout", not opts.get("detach")),
        "AttachStderr": opts.get("attach_stderr", not opts.get("detach")),
        # docker run -i: the container's stdin ends with the first attached client's
        "StdinOnce": opts.get("stdin_once", bool(opts.get("interactive")) and not opts.get("detach")),
        "ExposedPorts": exposed,
        "Volumes": dict(icfg.get("Volumes") or {}),
        "Labels": {**(icfg.get("Labels") or {}), **dict(l.partition("=")[::2] for l in opts.get("label") or ())},
        "StopSignal": opts.get("stop_signal") or icfg.get("StopSignal") or "",
        **({"StopTimeout": opts["stop_timeout"]} if opts.get("stop_timeout") is not None else {}),
        "Image": opts.get("image_name", ""),
    }


def host_config(opts: dict, mounts: list[dict] = ()) -> dict:
    """The ``HostConfig`` section: everything about how the host runs it. ``mounts``:
    the ``--mount`` values, parsed (:func:`.volumes.parse_mount_spec`)."""
    bindings = _parse_publish(opts.get("publish"))
    cpus = opts.get("cpus")
    return {
        "NetworkMode": opts.get("network") or "bridge",
        "ExtraHosts": _checked_extra_hosts(opts.get("add_host")),
        "PortBindings": bindings,
        "PublishAllPorts": bool(opts.get("publish_all")),
        "Links": list(opts.get("link") or ()),
        "Binds": list(opts.get("volume") or ()),
        "Mounts": [volumes.shown_mount(m) for m in mounts],
        "VolumesFrom": list(opts.get("volumes_from") or ()),
        "ReadonlyRootfs": bool(opts.get("read_only")),
        "Tmpfs": dict(t.partition(":")[::2] for t in opts.get("tmpfs") or ()),
        "Memory": _memory_bytes(opts.get("memory")),
        "MemorySwap": _swap_bytes(opts.get("memory_swap")),
        "NanoCpus": int(float(cpus) * 1e9) if cpus else 0,
        "CpuShares": int(opts.get("cpu_shares") or 0),
        "PidsLimit": _pids_limit(opts.get("pids_limit")),
        "AutoRemove": bool(opts.get("rm")),
        "CapAdd": list(opts.get("cap_add") or ()),
        "CapDrop": list(opts.get("cap_drop") or ()),
        "Privileged": bool(opts.get("privileged")),
        "SecurityOpt": _checked_security_opts(opts.get("security_opt")),
        # dockerd --default-runtime: $MINIDOCKER_DEFAULT_RUNTIME (e.g. minidocker-runtime,
        # to run the engine's whole test suite through the runtime's command line)
        "Runtime": opts.get("runtime") or os.environ.get("MINIDOCKER_DEFAULT_RUNTIME") or "minidocker",
    }


def networking_config(hostcfg: dict, opts: dict) -> dict | None:
    """What the docker CLI puts into ``NetworkingConfig`` for the network a container is
    run on: ``--network-alias`` names, and on a user-defined network the ``--link``s
    (there a link is a name the network's DNS answers, for this container only). Kept
    as the engine keeps endpoints: ``{"Endpoints": [{"Network": NAME, ...}]}``.

    An alias on the default bridge (or host, none) is refused at once, with dockerd's
    message: those networks have no DNS to answer it."""
    mode = hostcfg["NetworkMode"]
    aliases = list(opts.get("network_alias") or ())
    user_defined = mode not in ("bridge", "default", "host", "none") and not mode.startswith("container:")
    if aliases and not user_defined:
        raise InvalidInput("network-scoped alias is supported only for containers in user defined networks")
    links = list(hostcfg["Links"]) if user_defined else []
    if not (aliases or links):
        return None
    endpoint = {"Network": mode, "Aliases": aliases or None, "IPAMConfig": None}
    if links:
        endpoint["Links"] = links
    return {"Endpoints": [endpoint]}


def _checked_extra_hosts(values) -> list[str] | None:
    """``--add-host NAME:IP`` values (Docker's ``ExtraHosts``), refused now if bad."""
    import ipaddress
    out = []
    for value in values or ():
        name, colon, ip = value.partition(":")
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            colon = ""
        if not colon or not name:
            raise InvalidInput(f'invalid argument "{value}" for "--add-host" flag: '
                               f'invalid IP address in add-host: "{ip}"')
        out.append(f"{name}:{ip.strip('[]')}")
    return out or None


def _memory_bytes(value) -> int:
    """``-m 32m`` -> 33554432 (Docker's units; see :func:`minidocker.kernel.cgroups.parse_bytes`)."""
    if not value:
        return 0
    return parse_bytes(value)


def _swap_bytes(value) -> int:
    """``--memory-swap``: memory *plus* swap, in Docker's units; ``-1`` is unlimited swap."""
    if value is None or value == "":
        return 0
    if str(value).strip() == "-1":
        return -1
    return _memory_bytes(value)


def _pids_limit(value) -> int | None:
    """``--pids-limit``: since API 1.41 (Docker 20.10) ``0`` and ``-1`` both mean
    "unlimited", and any other negative number is taken the same way (it always was
    accepted); the daemon then stores no limit at all (``"PidsLimit": null``)."""
    if value is None or int(value) <= 0:
        return None
    return int(value)


def check_resources(hostcfg: dict) -> None:
    """Refuse the limits Docker's daemon refuses when it creates a container
    (``verifyPlatformContainerResources``), with its messages, before any record exists.

    The numbers come from the kernel or from Docker's own floor:

    * memory: at least 6 MB (not a kernel rule: Docker's guess at what a container
      needs to start at all);
    * memory + swap (``--memory-swap``) cannot be below the memory limit, since the
      kernel keeps ``memsw >= memory`` at all times; and it means nothing without one;
    * ``--cpus`` becomes a CFS quota per 100 ms period, and the kernel refuses a quota
      under 1 ms: 0.01 CPUs is the floor (Docker checks only for a negative value and
      lets the runtime fail at start on the rest; the engine says it at once, in the
      same words); the ceiling is every CPU of the machine;
    * ``--cpu-shares`` cannot be negative (the cgroup file takes an unsigned number;
      Docker finds out only when it starts the container, this engine at once).
    """
    memory, swap = hostcfg.get("Memory") or 0, hostcfg.get("MemorySwap") or 0
    if memory and memory < MIN_MEMORY:
        raise InvalidInput("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidInput("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0:
        raise InvalidInput("You should always set the Memory limit when using Memoryswap limit, see usage")
    nano_cpus, ncpu = hostcfg.get("NanoCpus") or 0, os.cpu_count() or 1
    if nano_cpus < 0 or nano_cpus > ncpu * 10**9 or 0 < nano_cpus < MIN_NANO_CPUS:
        raise InvalidInput(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if (hostcfg.get("CpuShares") or 0) < 0:
        raise InvalidInput("shares: invalid argument")


#: Docker's floor for ``-m`` (``linuxMinMemory``): 6 MiB.
MIN_MEMORY = 6 * 1024 * 1024
#: 0.01 CPUs: a 1 ms quota per 100 ms period, the smallest quota the kernel takes.
MIN_NANO_CPUS = 10**7


def _checked_security_opts(opts) -> list[str]:
    """``--security-opt`` values, refused now if bad (before any record exists); a
    seccomp profile file is read and checked now, and its JSON kept."""
    return read_security_opts(opts)


def create_container(store, image_ref: str, cmd: list[str] | None, opts: dict,
                     pull=None) -> Container:
    """Make the record of a new container (nothing runs yet). Bad options fail first,
    before an image is pulled (with ``pull``, see :func:`find_image`) or any record
    exists."""
    mounts = [volumes.parse_mount_spec(m) for m in opts.get("mount") or ()]
    hostcfg = host_config(opts, mounts)
    check_resources(hostcfg)
    netcfg = networking_config(hostcfg, opts)
    # -v, --mount and --tmpfs are parsed once, here; the monitor mounts what the record
    # keeps (volumes.mount_specs).
    mount_specs = volumes.parse_mounts(hostcfg["Binds"], mounts, hostcfg["Tmpfs"])
    from .ociruntime import resolve  # lazy: subprocess, for a runtime binary's verbs
    resolve(hostcfg["Runtime"])   # "minidocker", or a runc-compatible binary
    image_id = find_image(image_ref, store, opts.get("pull") or "missing", pull)
    image_config = store.image_config(image_id)
    config = container_config(image_config, cmd, {**opts, "image_name": image_ref})
    if not (config["Entrypoint"] or config["Cmd"]):
        raise MinidockerError("No command specified")
    argv = config["Entrypoint"] + config["Cmd"]
    state = {
        "Path": argv[0], "Args": argv[1:], "Image": image_id, "ImageName": image_ref,
        "Config": config, "HostConfig": hostcfg,
        "State": {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0,
                  "OOMKilled": False, "Error": "", "StartedAt": "", "FinishedAt": ""},
        "NetworkSettings": {}, "Mounts": [], "_MountSpecs": mount_specs,
    }
    if opts.get("endpoints"):
        # the Engine API's NetworkingConfig (aliases on a user network): the list form
        # state.json keeps (see network.endpoints_config)
        state["NetworkingConfig"] = {"Endpoints": list(opts["endpoints"])}
    if opts.get("owner"):
        # A container that belongs to a command (a build's RUN step): gone with it.
        state["_Owner"] = opts["owner"]
    if netcfg:
        state["NetworkingConfig"] = netcfg
    cid = new_id()
    if not config["Hostname"]:
        config["Hostname"] = cid[:12]  # Docker's default hostname: the short id
    c = new_record(opts.get("name"), state, cid)
    c.emit("create")
    return c
