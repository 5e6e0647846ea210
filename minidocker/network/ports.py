"""Exposed and published ports: ``--expose``, ``-p``, ``-P`` and ``minidocker port``.

*Exposing* a port (``EXPOSE 80`` in a Dockerfile, ``--expose 80``) only documents it:
links announce it and ``-P`` publishes it. *Publishing* (``-p 8080:80``) makes the host
forward its port 8080 to the container's port 80: a DNAT rule (see firewall.py), for
connections to 127.0.0.1 and to any of the host's own addresses.

Host ports in use are recorded in ``$ROOT/networks/ports.json``
(``{"tcp/0.0.0.0/8080": "<container id>"}``) so that two containers cannot publish the
same one; Docker's message for that is kept: ``port is already allocated``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from .. import paths
from ..errors import Conflict, InvalidInput

PROTOCOLS = ("tcp", "udp", "sctp")


# ----------------------------------------------------------------------- parsing
def parse_port_proto(text: str) -> tuple[str, str]:
    """``80`` -> ("80", "tcp"); ``53/udp`` -> ("53", "udp"); ``8000-8002`` stays a range."""
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidInput(f"invalid proto: {proto}")
    lo, _, hi = port.partition("-")
    for part in (lo, hi) if hi else (lo,):
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise InvalidInput(f"invalid containerPort: {port}" if part else f"invalid port: {text!r}")
    if hi and int(hi) < int(lo):
        raise InvalidInput(f"invalid port range: {port}")
    return port, proto


def _expand(port: str) -> list[int]:
    lo, _, hi = port.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def parse_expose(values) -> dict:
    """``--expose 80 --expose 53/udp --expose 8000-8001`` -> Config.ExposedPorts."""
    exposed = {}
    for value in values or ():
        port, proto = parse_port_proto(value)
        for p in _expand(port):
            exposed[f"{p}/{proto}"] = {}
    return exposed


def parse_publish(values) -> dict:
    """``-p`` values -> HostConfig.PortBindings, Docker's forms:

    ``80`` (a free host port), ``8080:80``, ``127.0.0.1:8080:80``, ``127.0.0.1::80``
    (a free port on that address), each with an optional ``/udp``; ranges like
    ``8000-8001:80-81`` pair up port by port.
    """
    bindings: dict[str, list] = {}
    for value in values or ():
        container_part, _, proto = value.rpartition("/") if "/" in value else (value, "", "tcp")
        parts = container_part.split(":")
        if len(parts) > 3:
            raise InvalidInput(f"invalid publish spec {value!r}: expected [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]")
        if len(parts) == 1:
            host_ip, host_port, ctr = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, (host_port, ctr) = "", parts
        else:
            host_ip, host_port, ctr = parts
        if host_ip:
            host_ip = host_ip.strip("[]")
            try:
                ipaddress.IPv4Address(host_ip)
            except ValueError:
                raise InvalidInput(f"invalid IP address: {host_ip}") from None
        ctr, proto = parse_port_proto(f"{ctr}/{proto}")
        ctr_ports = _expand(ctr)
        if host_port:
            hp, _ = parse_port_proto(host_port)
            host_ports = _expand(hp)
            if len(host_ports) != len(ctr_ports) and len(host_ports) != 1:
                raise InvalidInput(f"invalid ranges specified for container and host Ports: {value}")
        else:
            host_ports = []
        for i, cp in enumerate(ctr_ports):
            if not host_ports:
                hp = ""                      # any free port
            elif len(host_ports) == 1:
                hp = str(host_ports[0])
            else:
                hp = str(host_ports[i])      # ranges pair up one by one
            bindings.setdefault(f"{cp}/{proto}", []).append({"HostIp": host_ip, "HostPort": hp})
    return bindings


def split_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port), proto or "tcp"


def exposed_ports(state: dict) -> list[str]:
    """Every port the container exposes (EXPOSE, --expose and -p alike), sorted by number."""
    keys = set((state.get("Config") or {}).get("ExposedPorts") or {})
    keys |= set((state.get("HostConfig") or {}).get("PortBindings") or {})
    return sorted(keys, key=split_key)


# ----------------------------------------------------------------------- allocation
def table_path() -> str:
    return os.path.join(paths.data_root(), "networks", "ports.json")


def load_table() -> dict:
    try:
        return paths.read_json(table_path())
    except FileNotFoundError:
        return {}


def save_table(table: dict) -> None:
    paths.write_json(table_path(), table)


def _host_port_free(host_ip: str, port: int, proto: str) -> bool:
    """Could a program on the host bind this port? If one already listens there, our DNAT
    rule would silently steal its connections: refuse, as dockerd does."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if e.errno == errno.EADDRNOTAVAIL:
                raise InvalidInput(f"cannot publish on {host_ip}: not an address of this host") from None
            raise
    return True


def _free_ephemeral_port(proto: str, host_ip: str) -> int:
    """Ask the kernel: binding port 0 returns a free port of the ephemeral range
    (``/proc/sys/net/ipv4/ip_local_port_range``), the range ``-P`` uses."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip or "0.0.0.0", 0))
        return s.getsockname()[1]


def _slot(proto: str, host_ip: str, port: int) -> str:
    return f"{proto}/{host_ip or '0.0.0.0'}/{port}"


def _clashes(table: dict, proto: str, host_ip: str, port: int) -> bool:
    """0.0.0.0 covers every address, so it clashes with any binding of the same port."""
    for key in table:
        p, ip, n = key.split("/")
        if p == proto and int(n) == port and (ip == (host_ip or "0.0.0.0") or "0.0.0.0" in (ip, host_ip or "0.0.0.0")):
            return True
    return False


def allocate(state: dict) -> dict:
    """Choose the host side of every published port of the container and record it.
    Returns NetworkSettings.Ports: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
    "443/tcp": None}`` (None: exposed but not published). Call under the networks lock."""
    host_config = state.get("HostConfig") or {}
    bindings = host_config.get("PortBindings") or {}
    publish_all = host_config.get("PublishAllPorts")
    table = load_table()
    result = {}
    for key in exposed_ports(state):
        port, proto = split_key(key)
        if not 0 < port < 65536 or proto not in PROTOCOLS:
            raise InvalidInput(f"invalid containerPort: {key}")
        wanted = bindings.get(key) or ([{"HostIp": "", "HostPort": ""}] if publish_all else None)
        if not wanted:
            result[key] = None
            continue
        result[key] = []
        for binding in wanted:
            host_ip = binding.get("HostIp") or ""
            host_port = binding.get("HostPort") or ""
            if host_port:
                if not str(host_port).isdigit() or not 0 < int(host_port) < 65536:
                    raise InvalidInput(f"invalid hostPort: {host_port}")
                hp = int(host_port)
                if _clashes(table, proto, host_ip, hp) or not _host_port_free(host_ip, hp, proto):
                    raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{hp} failed: port is already allocated")
            else:
                for _ in range(50):
                    hp = _free_ephemeral_port(proto, host_ip)
                    if not _clashes(table, proto, host_ip, hp):
                        break
            table[_slot(proto, host_ip, hp)] = state["Id"]
            result[key].append({"HostIp": host_ip or "0.0.0.0", "HostPort": str(hp)})
    save_table(table)
    return result


def release(container_id: str) -> None:
    table = load_table()
    kept = {k: v for k, v in table.items() if v != container_id}
    if kept != table:
        save_table(kept)


def format_port_lines(ports: dict, only: str | None = None) -> list[str]:
    """``minidocker port`` output: ``80/tcp -> 0.0.0.0:8080`` (or just the address when
    one port is asked for)."""
    lines = []
    for key in sorted(ports or {}, key=split_key):
        if only and key != only:
            continue
        for binding in ports[key] or []:
            address = f"{binding['HostIp']}:{binding['HostPort']}"
            lines.append(address if only else f"{key} -> {address}")
    return lines
