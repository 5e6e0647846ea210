"""Turn a container record into an OCI runtime bundle: ``bundle/config.json`` + ``rootfs``.

This is the line between Docker's daemon and runc: everything the engine decided (the
command, the environment, the user, the limits, the capabilities and the seccomp filter,
the extra mounts) is written into one
JSON file in the OCI runtime-spec format, and the runtime needs nothing else. Open a
container's ``bundle/config.json`` to see exactly what a container is.
"""

from __future__ import annotations

import os

from .. import paths
from ..errors import InvalidInput, MinidockerError
from ..runtime import spec as runtime_spec
from .containers import resolve
from .etc_files import lookup_user
from .seccomp_profile import read_profile, to_spec

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _bind(source: str, destination: str, readonly: bool = False) -> dict:
    return {"destination": destination, "type": "bind", "source": source,
            "options": ["rbind", "rprivate"] + (["ro"] if readonly else [])}


def namespaces_for(state: dict) -> list[dict]:
    """One entry per namespace; ``--network host`` shares the host's (no entry), and
    ``--network container:X`` joins X's by path."""
    kinds = ["pid", "mount", "ipc", "uts", "cgroup"]
    ns = [{"type": k} for k in kinds]
    mode = state["HostConfig"]["NetworkMode"]
    if mode.startswith("container:"):
        other = resolve(mode.split(":", 1)[1])
        if not other.state["State"]["Running"]:
            raise MinidockerError(f"cannot join network of a non running container: {other.id}")
        ns.append({"type": "network", "path": f"/proc/{other.state['State']['Pid']}/ns/net"})
    elif mode != "host":
        ns.append({"type": "network"})
    return ns


def build_spec(c, extra_env: list[str] = (), extra_mounts: list[dict] = ()) -> dict:
    """The OCI ``config.json`` for container ``c`` (its overlay must be mounted)."""
    st = c.state
    cfg, hostcfg = st["Config"], st["HostConfig"]
    uid, gid, extra_gids, home = lookup_user(c.rootfs, cfg.get("User") or "")
    env = list(cfg["Env"])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.append(f"HOSTNAME={cfg['Hostname']}")
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home or '/'}")
    if cfg.get("Tty") and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    env += list(extra_env)
    mounts = [_bind(os.path.join(c.dir, name), f"/etc/{name}")
              for name in ("hostname", "hosts", "resolv.conf")] + list(extra_mounts)
    nano_cpus = hostcfg.get("NanoCpus") or 0
    caps = capabilities(hostcfg)
    spec = runtime_spec.default_spec(
        [st["Path"], *st["Args"]], env=env, cwd=cfg.get("WorkingDir") or "/",
        uid=uid, gid=gid, hostname=cfg["Hostname"], terminal=bool(cfg.get("Tty")),
        additional_gids=extra_gids, readonly_rootfs=bool(hostcfg.get("ReadonlyRootfs")),
        memory=hostcfg.get("Memory") or None, cpus=nano_cpus / 1e9 if nano_cpus else None,
        pids_limit=hostcfg.get("PidsLimit") or None, cgroups_path=c.cgroup,
        memory_swap=hostcfg.get("MemorySwap") or None, cpu_shares=kernel_shares(hostcfg.get("CpuShares")),
        capabilities=caps, no_new_privileges=no_new_privileges(hostcfg),
        namespaces=namespaces_for(st), mounts=mounts, privileged=bool(hostcfg.get("Privileged")),
        seccomp=seccomp_option(hostcfg, caps))
    # Not fsync'd: it is written again from state.json at every start.
    paths.write_json(os.path.join(c.bundle, "config.json"), spec, durable=False)
    return spec


def kernel_shares(shares) -> int | None:
    """``--cpu-shares`` as the kernel takes it: Docker passes any value on, and the
    scheduler clamps it to 2..262144 (``MIN_SHARES``/``MAX_SHARES``); it is clamped here
    the same way, so that ``-c 1`` runs as under Docker. 0 (unset) means the default."""
    if not shares:
        return None
    return min(max(int(shares), 2), 262144)


def capabilities(hostcfg: dict) -> list[str]:
    """Docker's default set, changed by ``--cap-add`` / ``--cap-drop`` (``ALL`` allowed)."""
    every = list(runtime_spec.CAP_NUMBERS)
    current = list(runtime_spec.DOCKER_DEFAULT_CAPS)
    for cap in hostcfg.get("CapAdd") or ():
        names = every if cap.upper() == "ALL" else [_cap(cap)]
        for name in names:
            if name not in every:
                raise InvalidInput(f"unknown capability: {cap!r}")
            if name not in current:
                current.append(name)
    for cap in hostcfg.get("CapDrop") or ():
        current = [] if cap.upper() == "ALL" else [n for n in current if n != _cap(cap)]
    return current


def security_options(opts) -> dict[str, str]:
    """``--security-opt`` values as a dict, checked: ``no-new-privileges[=true|false]``,
    ``seccomp=unconfined`` and ``seccomp={...}`` (a profile's JSON, as :func:`read_security_opts`
    keeps it). Anything else is an error: AppArmor and SELinux labels (this engine has
    neither). ``KEY:VALUE`` is the old spelling of ``KEY=VALUE``, as in Docker."""
    found = {}
    for opt in opts or ():
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "no-new-privileges" and value in ("", "true", "false"):
            found[key] = value or "true"
        elif key == "seccomp" and (value == "unconfined" or value.startswith("{")):
            found[key] = value
        else:
            raise InvalidInput(f'invalid --security-opt: "{opt}"')
    return found


def read_security_opts(opts) -> list[str]:
    """``--security-opt`` as given on the command line -> as kept in the record: a
    ``seccomp=PATH`` becomes ``seccomp={...}``, the profile's checked JSON, as the
    docker CLI sends it (see :mod:`.seccomp_profile`)."""
    kept = []
    for opt in opts or ():
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "seccomp" and value != "unconfined" and not value.startswith("{"):
            opt = f"seccomp={read_profile(value)}"
        kept.append(opt)
    security_options(kept)
    return kept


def no_new_privileges(hostcfg: dict) -> bool:
    return security_options(hostcfg.get("SecurityOpt")).get("no-new-privileges") == "true"


def seccomp_option(hostcfg: dict, caps) -> bool | dict:
    """The container's system call filter, as in Docker: the default profile
    (:func:`minidocker.runtime.seccomp.docker_like_profile`, made for the container's
    final capabilities ``caps``), or the ``--security-opt seccomp=`` profile made for
    them (:func:`minidocker.engine.seccomp_profile.to_spec`), or none with
    ``seccomp=unconfined`` (``--privileged`` also runs without one: see the spec)."""
    chosen = security_options(hostcfg.get("SecurityOpt")).get("seccomp")
    if chosen == "unconfined":
        return False
    if chosen:
        return to_spec(chosen, caps) or False
    return True


def _cap(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else f"CAP_{name}"
