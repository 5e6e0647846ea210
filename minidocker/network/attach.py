"""A container on its networks: the engine's hooks, one interface per network.

* :func:`attach_container` -- in the container's monitor, once the container's network
  namespace exists and before its command runs: lease an address, plug a veth pair into
  the bridge, configure ``eth0`` inside, publish ports; on a user-defined network make
  sure its DNS server runs (:mod:`.dns`). Returns ``NetworkSettings``.
* :func:`detach_container` -- when the monitor takes the container down (it exited,
  was stopped or killed; idempotent): give everything back.
* :func:`cleanup_stale` -- at the start of a command: release what containers that died
  without a ``detach`` (a crash, ``kill -9`` of minidocker) still hold.
* :func:`attach_endpoint` / :func:`detach_endpoint` -- ``network connect`` /
  ``disconnect`` of a running container: one more interface (``eth1``, ``eth2``...) on
  one more bridge, or one less. Which networks a container is on is
  :func:`endpoints_config`.

pyroute2 (~100 ms) is imported only inside the bridge and veth functions that need it:
releasing a container that was never on a bridge reads lease files and nothing more.
"""

from __future__ import annotations

import os
import secrets
import sys

from .. import paths
from ..errors import Conflict, InvalidInput, MinidockerError
from ..kernel import processes
from ..kernel.netdev import set_link_up_in
from . import bridge, dns, firewall, hosts, ipam, ports, records, veth


def network_mode(state: dict) -> str:
    """``HostConfig.NetworkMode``, with Docker's ``default`` meaning ``bridge``."""
    mode = ((state.get("HostConfig") or {}).get("NetworkMode") or "bridge").strip()
    return "bridge" if mode == "default" else mode


def _empty_settings(pid: int | None = None) -> dict:
    return {"Bridge": "", "SandboxID": "", "SandboxKey": f"/proc/{pid}/ns/net" if pid else "",
            "HairpinMode": False, "Ports": {}, "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "MacAddress": "", "Networks": {}}


def endpoints_config(state: dict) -> dict:
    """The networks a container is to be on, in the order they were joined, each with
    its endpoint settings (``{"Aliases": [...], "IPAMConfig": {"IPv4Address": ...}}``).

    ``run --network NAME`` means ``{NAME: {}}``; ``network connect`` and ``disconnect``
    change it, and state.json then keeps it as ``NetworkingConfig.Endpoints``: a list of
    ``{"Network": NAME, ...settings}`` (Docker's create API has a map,
    ``EndpointsConfig``; a list keeps the order, which names the interfaces). At start
    the first network becomes ``eth0`` (with the default route and the published
    ports), the next ``eth1``, and so on."""
    listed = (state.get("NetworkingConfig") or {}).get("Endpoints")
    if listed is None:
        return {network_mode(state): {}}
    return {e["Network"]: {k: v for k, v in e.items() if k != "Network"} for e in listed}


def endpoints_list(config: dict) -> list[dict]:
    """:func:`endpoints_config`'s dict back into what state.json keeps."""
    return [{"Network": name, **settings} for name, settings in config.items()]


def attach_container(state: dict, pid: int) -> dict:
    """Connect the network namespace of ``pid`` (the container's PID 1) as
    ``HostConfig.NetworkMode`` says. Returns ``NetworkSettings`` (Docker's fields).

    Peers find each other by name through the DNS server of each user-defined network
    (:mod:`.dns`), not through /etc/hosts: the engine points the container's
    /etc/resolv.conf at them (:func:`.dns.dns_servers`)."""
    mode = network_mode(state)
    if mode == "host":
        settings = _empty_settings()
        settings["Networks"]["host"] = _endpoint(records.get("host"), "", "", 0, "")
        return settings
    if mode.startswith("container:"):
        return _empty_settings()  # it shares another container's namespace, set up already
    if mode == "none":
        set_link_up_in(pid, "lo")
        settings = _empty_settings(pid)
        settings["Networks"]["none"] = _endpoint(records.get("none"), "", "", 0, "")
        return settings
    cleanup_stale()  # addresses and ports of containers that died without a detach
    settings = _empty_settings(pid)
    try:
        for index, (name, cfg) in enumerate(endpoints_config(state).items()):
            endpoint, published = _attach_bridge(state, pid, records.get(name), index, cfg)
            settings["Networks"][name] = endpoint
            if index == 0:
                settings["Ports"] = published
                if name == records.DEFAULT_NETWORK:
                    settings.update(_top_level(endpoint))
    except BaseException:
        if settings["Networks"]:
            detach_container(state)  # the networks joined before the one that failed
        raise
    return settings


def _top_level(endpoint: dict) -> dict:
    """Docker fills the top-level address fields for the default bridge (as eth0) only."""
    return {"Gateway": endpoint["Gateway"], "IPAddress": endpoint["IPAddress"],
            "IPPrefixLen": endpoint["IPPrefixLen"], "MacAddress": endpoint["MacAddress"]}


def _endpoint(rec, ip, gateway, prefixlen, mac, aliases=None, endpoint_id="",
              ipam_config=None, links=None) -> dict:
    return {"IPAMConfig": ipam_config, "Links": links, "Aliases": aliases, "NetworkID": rec["Id"],
            "EndpointID": endpoint_id, "Gateway": gateway,
            "IPAddress": ip, "IPPrefixLen": prefixlen, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac}


def _interfaces_in_use(cid: str) -> set[str]:
    """The ``ethN`` the container has on our bridges (from the leases: a lease made
    before leases named their interface was the only one, ``eth0``)."""
    return {lease.get("Interface", "eth0") for rec in records.list_records()
            for lease in ipam.leases_of(rec["Name"]).values() if lease.get("Container") == cid}


def _attach_bridge(state: dict, pid: int, rec: dict, index: int | None = 0,
                   cfg: dict | None = None) -> tuple[dict, dict]:
    """Plug the container into one bridge network as ``eth<index>`` (``None``: the lowest
    free one); returns its endpoint (``NetworkSettings.Networks[NAME]``) and, for
    ``eth0``, the published ports.

    The lease records what the network's DNS server answers for the container: its
    name, its aliases there and, for the container alone, its links (``Links``:
    ``["web:db"]``, Docker's endpoint field; see :mod:`.dns_names`)."""
    if rec["Driver"] != "bridge":
        raise InvalidInput(f"network {rec['Name']} cannot be used by a container this way")
    cfg = cfg or {}
    cid, name = state["Id"], state.get("Name") or state["Id"][:12]
    name = name.lstrip("/")
    br, subnet, gateway = records.bridge_name(rec), records.subnet_of(rec), records.gateway_of(rec)
    user_defined = rec["Name"] != records.DEFAULT_NETWORK
    aliases = list(cfg.get("Aliases") or [])
    links = list(cfg.get("Links") or []) if user_defined else []
    wanted = (cfg.get("IPAMConfig") or {}).get("IPv4Address") or None
    endpoint_id = secrets.token_hex(32)
    with paths.locked("networks"):
        if any(l.get("Container") == cid for l in ipam.leases_of(rec["Name"]).values()):
            raise Conflict(f"endpoint with name {name} already exists in network {rec['Name']}")
        if index is None:
            used = _interfaces_in_use(cid)
            index = next(n for n in range(100) if f"eth{n}" not in used)
        ifname = f"eth{index}"
        entry = {"Container": cid, "Name": name, "Pid": pid, "PidStart": processes.start_time(pid),
                 "EndpointID": endpoint_id, "Interface": ifname, "Aliases": aliases,
                 "Links": links}
        address = ipam.allocate(rec["Name"], subnet, gateway, entry, wanted=wanted, bridge=br)
        published = {}
        try:
            if index == 0:
                published = ports.allocate(state)
            with firewall.host_lock():
                bridge.set_up(rec)
                bridge.enable_ip_forward()
                veth.plug(cid, pid, br, address, subnet.prefixlen, gateway if index == 0 else None,
                          ifname=ifname)
                _publish(cid, br, address, published)
            if user_defined:
                dns.ensure_running(rec)  # the bridge is up: its address can be listened on
                hostname = (state.get("Config") or {}).get("Hostname")
                if hostname:  # its own address under its hostname, as Docker writes it
                    hosts.add_entries(hosts.hosts_path(cid), [(address, [hostname])])
        except BaseException:
            _release_network_locked(cid, rec)
            if index == 0:
                _release_ports_locked(cid)
            raise
    records.emit(rec, "connect", cid)
    docker_aliases = [*aliases, cid[:12]] if user_defined else (aliases or None)
    endpoint = _endpoint(rec, address, gateway, subnet.prefixlen, veth.mac_for(address),
                         docker_aliases, endpoint_id, {"IPv4Address": wanted} if wanted else None,
                         links or None)
    return endpoint, published


def attach_endpoint(state: dict, pid: int, rec: dict, cfg: dict | None = None) -> dict:
    """``network connect`` of a running container: one more interface, on ``rec``'s
    bridge, with the lowest free ``ethN``. Returns the new endpoint; the caller records
    it in the container's state."""
    cleanup_stale()
    endpoint, _published = _attach_bridge(state, pid, rec, None, cfg)
    return endpoint


def detach_endpoint(state: dict, rec: dict) -> str | None:
    """``network disconnect`` of a running container: take its interface on ``rec``
    away, with its address and the hosts line it had there (its own).
    Returns the interface it had (``eth1``...), None if it had none there. Leaving the
    network of ``eth0`` also gives its published ports back (they led to that address)."""
    cid = state["Id"]
    with paths.locked("networks"):
        ifname = _release_network_locked(cid, rec)
        if ifname == "eth0":
            _release_ports_locked(cid)
    return ifname


def _publish(cid: str, br: str, address: str, published: dict) -> None:
    for key, bindings in published.items():
        port, proto = ports.split_key(key)
        for binding in bindings or []:
            host_ip = "" if binding["HostIp"] == "0.0.0.0" else binding["HostIp"]
            firewall.add_dnat(firewall.dnat_rule(br, host_ip, int(binding["HostPort"]), proto,
                                                 address, port, cid))


def detach_container(state: dict) -> None:
    """Give back everything the container holds: addresses, host ports, DNAT rules, its
    veth pair; stop the DNS server of a network it was the last on, and remove the
    default bridge when no container is left on it. Safe to call twice, and for
    containers that never ran."""
    cid = state["Id"]
    with paths.locked("networks"):
        release_locked(cid)


def release_locked(cid: str) -> None:
    """Everything the container holds, network by network (:func:`_release_network_locked`),
    then its host ports; then any veth pair a crash left in the host's namespace. A
    container that was never on a bridge costs only reads of the lease files: pyroute2
    and iptables are not loaded for it."""
    for rec in records.list_records():
        _release_network_locked(cid, rec)
    _release_ports_locked(cid)
    if veth.names_left(cid):
        with firewall.host_lock():
            veth.remove(cid)
            _remove_default_bridge_if_unused()


def _release_network_locked(cid: str, rec: dict) -> str | None:
    """Give back what the container holds on one network: its lease (so its names are
    no longer answered), its veth pair there, its own address's line in its
    /etc/hosts; the network's DNS server goes with the last live lease. Returns the
    interface it had. Call with the networks lock held."""
    mine = {ip: l for ip, l in ipam.leases_of(rec["Name"]).items() if l.get("Container") == cid}
    ifname = next((l.get("Interface", "eth0") for l in mine.values()), None)
    freed = ipam.release(rec["Name"], cid, bridge=records.bridge_name(rec))
    if freed:
        records.emit(rec, "disconnect", cid)
    if freed and rec["Name"] != records.DEFAULT_NETWORK:
        hosts.remove_subnet(hosts.hosts_path(cid), records.subnet_of(rec))
        dns.stop_if_unused(rec["Name"])
    if ifname is not None and veth.names_left(cid, veth.interface_index(ifname)):
        with firewall.host_lock():
            veth.remove(cid, veth.interface_index(ifname))
    if freed and rec["Name"] == records.DEFAULT_NETWORK:
        with firewall.host_lock():
            _remove_default_bridge_if_unused()
    return ifname


def release_endpoint_by_name(rec: dict, ref: str) -> bool:
    """``network disconnect -f`` of a container that no longer exists: release what is
    still held on ``rec`` under its name or id. True if there was something."""
    with paths.locked("networks"):
        found = {lease["Container"] for lease in ipam.leases_of(rec["Name"]).values()
                 if ref in (lease.get("Name"), lease.get("Container"))
                 or (len(ref) >= 12 and lease.get("Container", "").startswith(ref))}
        for cid in found:
            _release_network_locked(cid, rec)
    return bool(found)


def _release_ports_locked(cid: str) -> None:
    """Give back the container's host ports and their DNAT rules."""
    held = cid in ports.load_table().values()
    ports.release(cid)
    if held:
        with firewall.host_lock():
            firewall.remove_container(cid)


def _remove_default_bridge_if_unused() -> None:
    """Unlike dockerd, which keeps docker0 for ever, minidocker takes its default bridge
    (and its iptables rules) away when the last container has left it, so that a host
    with no containers carries nothing of ours. User-defined bridges stay until
    ``network rm``. Call with the networks lock and the host lock held."""
    path = records.record_path(records.DEFAULT_NETWORK)
    if not os.path.exists(path):
        return
    rec = paths.read_json(path)
    br = records.bridge_name(rec)
    if ipam.leases_of(records.DEFAULT_NETWORK) or bridge.ports(br):
        return  # still in use (by us, or by another data root sharing the bridge)
    bridge.take_down(br)


def cleanup_stale() -> list[str]:
    """Release what dead containers still hold; returns their ids.

    A lease is stale when the process it was made for (pid + start time) is gone: the
    container crashed, or minidocker was killed before it could detach. A user-defined
    network's DNS server is brought in line with its members too: restarted if it died
    while containers are on the network, stopped if none is (:func:`.dns.reconcile_network`).
    Cheap when there is nothing to do: it only reads the lease and ``dns.json`` files.
    """
    stale = set()
    recs = records.list_records()
    for rec in recs:
        for lease in ipam.leases_of(rec["Name"]).values():
            if not ipam.lease_is_alive(lease):
                stale.add(lease["Container"])
    leased = {lease["Container"] for rec in recs for lease in ipam.leases_of(rec["Name"]).values()}
    stale |= set(ports.load_table().values()) - leased
    default_path = records.record_path(records.DEFAULT_NETWORK)
    bridge_orphaned = False
    if os.path.exists(default_path):
        rec = paths.read_json(default_path)
        bridge_orphaned = (bridge.exists(records.bridge_name(rec)) and not leased
                           and not bridge.ports(records.bridge_name(rec)))
    if bridge.orphans():
        _remove_orphan_bridges()
    dns_off = [rec for rec in recs if dns.needs_reconcile(rec)]
    if not stale and not bridge_orphaned and not dns_off:
        return []
    with paths.locked("networks"):
        for cid in sorted(stale):
            release_locked(cid)
        if bridge_orphaned:
            with firewall.host_lock():
                _remove_default_bridge_if_unused()
        for rec in dns_off:
            if os.path.exists(records.record_path(rec["Name"])):
                try:
                    dns.reconcile_network(rec)
                except MinidockerError as e:  # say it, but let the command go on
                    print(f"minidocker: warning: {e}", file=sys.stderr)
    return sorted(stale)


def stale_holdings() -> list[tuple[str, str]]:
    """What dead containers of this data root still hold, for ``system check``
    (``cleanup_stale`` gives it back): ``(container id, what)`` for each address lease
    whose process is gone, each published host port of a container with no live
    lease, and each host-wide address claim (``/run/minidocker/addresses``) of one of
    those. (Other data roots' claims are theirs to report; a dead one is taken over
    by the next container that wants its address anyway.)"""
    found, live = [], set()
    for rec in records.list_records():
        for ip, lease in sorted(ipam.leases_of(rec["Name"]).items()):
            if ipam.lease_is_alive(lease):
                live.add(lease["Container"])
            else:
                found.append((lease["Container"], f"address {ip} on network {rec['Name']}"))
    for slot, cid in sorted(ports.load_table().items()):
        if cid not in live:
            found.append((cid, f"host port {slot}"))
    mine = {cid for cid, _ in found}
    for bridge_name in _listdir(ipam.CLAIMS_DIR):
        for ip in _listdir(os.path.join(ipam.CLAIMS_DIR, bridge_name)):
            holder = ipam.read_claim(bridge_name, ip)
            if holder is not None and holder.get("Container") in mine and \
                    not ipam.lease_is_alive(holder):
                found.append((holder["Container"],
                              f"claim on address {ip} of bridge {bridge_name}"))
    return found


def release_stale_claims() -> None:
    """Remove the host-wide address claims whose holder is gone (any data root's: a
    claim holds nothing once its process is dead)."""
    for bridge_name in _listdir(ipam.CLAIMS_DIR):
        for ip in _listdir(os.path.join(ipam.CLAIMS_DIR, bridge_name)):
            holder = ipam.read_claim(bridge_name, ip)
            if holder is not None and not ipam.lease_is_alive(holder):
                ipam.unclaim(bridge_name, ip, holder.get("Container"))


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove_orphan_bridges() -> None:
    """Bridges (and their rules) left by data roots that are gone: see bridge.orphans()."""
    with firewall.host_lock():
        for br in bridge.orphans():  # asked again, now under the lock
            bridge.take_down(br)


