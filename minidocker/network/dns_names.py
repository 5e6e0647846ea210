"""Who is called what: the names a network's DNS server answers, read from the data root.

The server keeps no table of its own. The truth is the address leases
(``$ROOT/networks/<name>/leases.json``, see :mod:`.ipam`): a container joining a
network adds its lease there, one leaving takes it away. So the server reads them on
every query (again only when a file has changed: :class:`Directory`), and a name is
answered as soon as its container has joined and no longer once it has left.

A container is known on a network by (Docker's service records):

* its name (``--name web``, or the name Docker made up),
* its short id, the first 12 hex digits (``docker run`` prints the whole id,
  ``docker ps`` these 12),
* its network aliases on that network (``run --network-alias``, ``network connect
  --alias``); several containers may share an alias, and then all their addresses are
  answered (Docker's DNS round robin),

and, for the container that made the link only, by the alias of a ``--link NAME:ALIAS``
(on a user-defined network a link is nothing but that name).

Whose names? The *asking* container's: the server finds it by the source address of
the query (its lease), and answers with the names of every network that container is
on, in the order it joined them; a peer on two of those networks is answered with its
address on the first. ``NAME.NETWORK`` asks for ``NAME`` on that network only (Docker's
``web.appnet``). A query from an address that no container holds (the host itself,
``nslookup web 10.89.0.1``) sees the server's own network.
"""

from __future__ import annotations

import ipaddress
import os
import threading

from .. import paths
from . import ipam, records


class Directory:
    """The data root's networks and leases, each file read again only when it changed
    (leases are replaced by an atomic rename, so a new inode or mtime means new content).
    Thread-safe: the server answers queries from several threads."""

    def __init__(self):
        self._files: dict[str, tuple[tuple, object]] = {}
        self._lock = threading.Lock()

    def _read(self, path: str, default):
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return default
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._files.get(path)
            if cached and cached[0] == key:
                return cached[1]
        try:
            value = paths.read_json(path)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return default
        with self._lock:
            self._files[path] = (key, value)
        return value

    def networks(self) -> dict[str, dict]:
        """The stored networks by name (the default bridge among them)."""
        try:
            names = os.listdir(records.networks_dir())
        except FileNotFoundError:
            return {}
        found = {}
        for name in names:
            rec = self._read(records.record_path(name), None)
            if rec:
                found[name] = rec
        return found

    def live_leases(self, network_name: str) -> dict[str, dict]:
        """``{address: lease}`` of the network's running containers."""
        table = self._read(ipam.leases_path(network_name), {}) or {}
        return {ip: lease for ip, lease in (table.get("leases") or {}).items()
                if ipam.lease_is_alive(lease)}


class View:
    """What one query may see: the asking container's networks (``[(name, record,
    live leases)]``, in the order it joined them) and its links (``{alias: target}``)."""

    def __init__(self, networks, links, container=None):
        self.networks = networks
        self.links = links
        self.container = container

    @property
    def may_forward(self) -> bool:
        """Docker forwards no query from a container whose networks are all
        ``--internal``: such a container is not meant to reach the outside."""
        return any(not rec.get("Internal") for _name, rec, _leases in self.networks)


def _interface_order(lease: dict) -> int:
    try:
        return int(lease.get("Interface", "eth0")[3:])
    except ValueError:
        return 0


def parse_link(spec: str) -> tuple[str, str]:
    """A ``--link`` as Docker keeps it in the endpoint (``NAME[:ALIAS]``) -> (alias, name)."""
    name, _, alias = spec.partition(":")
    name = name.strip("/").split("/")[-1].lower()
    alias = (alias.strip("/").split("/")[-1] or name).lower()
    return alias, name


def view_for(directory: Directory, own_network: str, client_ip: str) -> View:
    """The :class:`View` of the query that came from ``client_ip`` to the server of
    ``own_network``."""
    nets = directory.networks()
    leases = {name: directory.live_leases(name) for name in nets}
    client = (leases.get(own_network) or {}).get(client_ip)
    if client is None:  # reached the gateway from another of our networks, through the host
        client = next((ls[client_ip] for ls in leases.values() if client_ip in ls), None)
    if client is None:
        rec = nets.get(own_network)
        return View([(own_network, rec, leases.get(own_network, {}))] if rec else [], {})
    cid = client["Container"]
    joined = []
    links = {}
    for name, rec in nets.items():
        mine = [l for l in leases[name].values() if l.get("Container") == cid]
        if mine:
            joined.append((_interface_order(mine[0]), name, rec, leases[name]))
            for spec in mine[0].get("Links") or []:
                alias, target = parse_link(spec)
                links.setdefault(alias, target)
    joined.sort(key=lambda j: j[0])
    return View([(name, rec, ls) for _order, name, rec, ls in joined], links, cid)


def names_of(lease: dict) -> set[str]:
    """Every name a lease answers to (lower case: DNS names ignore case, RFC 4343)."""
    names = {(lease.get("Name") or "").lower(), lease.get("Container", "")[:12]}
    names.update(a.lower() for a in lease.get("Aliases") or [])
    names.discard("")
    return names


def _candidates(name: str, view: View):
    """(name, only this network) pairs to try: the whole name on every network, then
    ``a.b.c`` as ``a.b`` on network ``c``, ``a`` on network ``b.c`` (Docker's
    ``Sandbox.ResolveName``)."""
    yield name, None
    joined = {n.lower() for n, _rec, _ls in view.networks}
    for i, ch in enumerate(name):
        if ch == "." and name[i + 1:] in joined:
            yield name[:i], name[i + 1:]


def lookup(view: View, qname: str) -> list[str] | None:
    """The addresses of ``qname`` as the asking container sees it; None when it is not
    a name of its networks (then the query is forwarded to the host's resolvers)."""
    name = qname.lower().rstrip(".")
    for short, only in _candidates(name, view):
        target = view.links.get(short, short) if only is None else short
        for net_name, _rec, leases in view.networks:
            if only is not None and net_name.lower() != only:
                continue
            found = sorted((ip for ip, l in leases.items() if target in names_of(l)),
                           key=ipaddress.ip_address)
            if found:
                return found
    return None


def reverse(view: View, qname: str) -> str | None:
    """``4.0.89.10.in-addr.arpa`` -> ``web.appnet`` for an address a container of the
    view holds (Docker answers ``NAME.NETWORK``); None otherwise."""
    name = qname.lower().rstrip(".")
    if not name.endswith(".in-addr.arpa"):
        return None
    octets = name[:-len(".in-addr.arpa")].split(".")
    if len(octets) != 4:
        return None
    ip = ".".join(reversed(octets))
    for net_name, _rec, leases in view.networks:
        lease = leases.get(ip)
        if lease:
            return f"{lease.get('Name') or lease['Container'][:12]}.{net_name}"
    return None
