"""Legacy links (``--link NAME[:ALIAS]``): the "Service discovery" slide.

Before user-defined networks and their DNS, a container found its database through a
*link*: Docker put the linked container's address, ports and environment into the new
container's environment, and its names into ``/etc/hosts``. With
``--link 3b0425eb9ca8:mysqlserver`` the client sees::

    MYSQLSERVER_NAME=/clever_turing/mysqlserver        /<this container>/<alias>
    MYSQLSERVER_PORT=tcp://172.17.0.62:3306            the lowest exposed port
    MYSQLSERVER_PORT_3306_TCP=tcp://172.17.0.62:3306   one group per exposed port
    MYSQLSERVER_PORT_3306_TCP_ADDR=172.17.0.62
    MYSQLSERVER_PORT_3306_TCP_PORT=3306
    MYSQLSERVER_PORT_3306_TCP_PROTO=tcp
    MYSQLSERVER_ENV_MYSQL_ROOT_PASSWORD=secret         its env, all but HOME and PATH

and ``mysql -h mysqlserver`` resolves through the line ``172.17.0.62 mysqlserver ...``.
The variable prefix is the alias in upper case with ``-`` turned into ``_``, exactly as
Docker's ``links.ToEnv`` builds it. The linked container must be running (its address is
only known then).
"""

from __future__ import annotations

from ..errors import InvalidInput
from .containers import resolve


def legacy_links(state: dict) -> bool:
    """Does the container get legacy links (the variables and /etc/hosts lines below)?

    Docker's rule: only on the default bridge, where there is no DNS. On a
    user-defined network ``--link NAME:ALIAS`` is only a name: the network's DNS server
    answers ``ALIAS`` with NAME's address, to this container alone (the link is kept in
    the endpoint's ``Links``, see engine/create.py and network/dns_names.py)."""
    if not (state.get("HostConfig") or {}).get("Links"):
        return False
    listed = (state.get("NetworkingConfig") or {}).get("Endpoints")
    if listed is None:
        listed = [{"Network": (state.get("HostConfig") or {}).get("NetworkMode") or "bridge"}]
    return any(e.get("Network") in ("bridge", "default") for e in listed)


def parse_link(spec: str) -> tuple[str, str]:
    """``NAME[:ALIAS]`` -> (name, alias); the alias defaults to the name."""
    name, _, alias = spec.partition(":")
    name = name.lstrip("/")
    if not name:
        raise InvalidInput(f"invalid link spec: {spec!r}: expected NAME[:ALIAS]")
    return name, alias or name


def env_prefix(alias: str) -> str:
    return alias.upper().replace("-", "_")


def _ip_of(state: dict) -> str:
    settings = state.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return settings["IPAddress"]
    for endpoint in (settings.get("Networks") or {}).values():
        if endpoint.get("IPAddress"):
            return endpoint["IPAddress"]
    return ""


def _linked(state: dict):
    """The running containers this one links to: [(alias, Container, ip)]."""
    found = []
    for spec in (state.get("HostConfig") or {}).get("Links") or []:
        name, alias = parse_link(spec)
        other = resolve(name)
        if not (other.state.get("State") or {}).get("Running"):
            raise InvalidInput(f"Cannot link to a non running container: /{other.name} AS "
                               f"/{state.get('Name', '')}/{alias}")
        ip = _ip_of(other.state)
        if not ip:
            raise InvalidInput(f"Cannot link to /{other.name}: it has no address on the bridge "
                               "(was it started with --network none or host?)")
        found.append((alias, other, ip))
    return found


def _sorted_ports(exposed) -> list[tuple[int, str]]:
    """Docker's ``withTCPPriority`` order: every tcp port first, then the other
    protocols; by number within a protocol. So ``ALIAS_PORT`` names the lowest *tcp* port
    when there is one."""
    ports = []
    for key in exposed or {}:
        number, _, proto = key.partition("/")
        ports.append((int(number), (proto or "tcp").lower()))
    return sorted(ports, key=lambda p: (p[1] != "tcp", p[1], p[0]))


def env_for_link(this_name: str, alias: str, other_state: dict, ip: str) -> list[str]:
    """The variables one link adds, in the order Docker writes them: the default port,
    four variables per exposed port, and after the last port of a run of consecutive
    ports (same protocol) four more describing the range; then NAME and the ENVs."""
    prefix = env_prefix(alias)
    ports = _sorted_ports((other_state.get("Config") or {}).get("ExposedPorts"))
    env = []
    if ports:
        number, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{ip}:{number}")
    run_start = run_end = None
    for i, (number, proto) in enumerate(ports):
        p = f"{prefix}_PORT_{number}_{proto.upper()}"
        env += [f"{p}={proto}://{ip}:{number}", f"{p}_ADDR={ip}", f"{p}_PORT={number}",
                f"{p}_PROTO={proto}"]
        if run_end and (number, proto) == (run_end[0] + 1, run_end[1]):
            run_end = (number, proto)
            if i < len(ports) - 1:
                continue  # the run may go on
        if run_start and run_end != run_start:
            r = f"{prefix}_PORT_{run_start[0]}_{run_start[1].upper()}"
            env += [f"{r}_START={run_start[1]}://{ip}:{run_start[0]}", f"{r}_PORT_START={run_start[0]}",
                    f"{r}_END={run_end[1]}://{ip}:{run_end[0]}", f"{r}_PORT_END={run_end[0]}"]
        run_start = run_end = (number, proto)
    env.append(f"{prefix}_NAME=/{this_name}/{alias}")
    for var in (other_state.get("Config") or {}).get("Env") or []:
        key, eq, value = var.partition("=")
        if not eq or key in ("HOME", "PATH"):
            continue  # Docker skips these two: they describe the other image, not the service
        env.append(f"{prefix}_ENV_{key}={value}")
    return env


def link_env(state: dict) -> list[str]:
    """The engine's hook: every link's variables, for the container's environment."""
    env = []
    for alias, other, ip in _linked(state):
        env += env_for_link(state.get("Name", ""), alias, other.state, ip)
    return env


def hosts_entries(state: dict) -> list[tuple[str, str]]:
    """The engine's hook: ``/etc/hosts`` lines ``(ip, "alias id12 name")`` for each link."""
    entries = []
    for alias, other, ip in _linked(state):
        names = [alias]
        for extra in (other.id[:12], other.name):
            if extra and extra not in names:
                names.append(extra)
        entries.append((ip, " ".join(names)))
    return entries
