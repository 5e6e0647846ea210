"""A container's networks after ``run``: ``network connect`` and ``network disconnect``.

Which networks a container is on is a list in its state.json,
``NetworkingConfig.Endpoints`` (``[{"Network": NAME, "Aliases": [...], "IPAMConfig":
...}]``, in the order they were joined; absent, it is just ``HostConfig.NetworkMode``). A stopped
container only has that list changed: the monitor attaches every network on it at the
next start (see ``network.attach_container``). A running one also gets the interface
plugged in or taken out at once (``network.attach_endpoint`` / ``detach_endpoint``) and
its ``NetworkSettings.Networks`` updated.

The error messages are dockerd's, so that a learner can search for them.
"""

from __future__ import annotations

import ipaddress

from .. import network, paths
from ..errors import Conflict, InvalidInput, NotFound
from ..network import records
from .containers import Container, resolve
from .etc_files import write_resolv_conf
from .lifecycle import reconcile

#: dockerd's messages (runconfig/errors.go)
ERR_HOST = "container cannot be disconnected from host network or connected to host network"
ERR_NONE = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
ERR_SHARED = ("container sharing network namespace with another container or host cannot be "
              "connected to any other network")


def _check_mode(c: Container, rec: dict) -> None:
    """Only a container with a network namespace of its own on our bridges can join
    another network; none of them can join ``host`` or ``none``."""
    mode = network.network_mode(c.state)
    if mode == "host" or rec["Name"] == "host":
        raise Conflict(ERR_HOST)
    if mode.startswith("container:"):
        raise Conflict(ERR_SHARED)
    if mode == "none" or rec["Name"] == "none":
        raise Conflict(ERR_NONE)


def _endpoint_settings(rec: dict, aliases, ip: str | None) -> dict:
    user_defined = rec["Name"] not in records.PREDEFINED
    if ip:
        if not user_defined:
            raise InvalidInput("user specified IP address is supported on user defined networks only")
        try:
            address = ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidInput(f"invalid IPv4 address: {ip}") from None
        if address not in records.subnet_of(rec) or str(address) == records.gateway_of(rec):
            raise InvalidInput(f"no configured subnet or ip-range contain the IP address {ip}")
    if aliases and not user_defined:
        raise InvalidInput("network-scoped alias is supported only for containers in user defined networks")
    return {"Aliases": list(aliases) or None, "IPAMConfig": {"IPv4Address": ip} if ip else None}


def _save_networks(c: Container, change) -> None:
    """Apply ``change(endpoints_config, network_settings)`` to state.json under the
    container's lock (the monitor may write it at the same time)."""
    with paths.locked(f"container-{c.id}"):
        c.reload()
        config = network.endpoints_config(c.state)
        settings = c.state.get("NetworkSettings") or {}
        change(config, settings)
        c.state["NetworkingConfig"] = {"Endpoints": network.endpoints_list(config)}
        c.state["NetworkSettings"] = settings
        c.save()


def connect(ref: str, network_ref: str, aliases=(), ip: str | None = None) -> None:
    """``network connect [--alias A]... [--ip IP] NETWORK CONTAINER``."""
    rec = records.get(network_ref)
    c = reconcile(resolve(ref))
    _check_mode(c, rec)
    name = rec["Name"]
    cfg = _endpoint_settings(rec, aliases, ip)
    if name in network.endpoints_config(c.state):
        if not c.state["State"].get("Running"):
            # dockerd ("avoid duplicate config"): a stopped container already on the
            # network is left as it is, its first settings kept, and no error.
            return
        raise Conflict(f"endpoint with name {c.name} already exists in network {name}")
    if not c.state["State"].get("Running"):
        _save_networks(c, lambda config, _settings: config.__setitem__(name, cfg))
        return
    endpoint = network.attach_endpoint(c.state, c.state["State"]["Pid"], rec, cfg)

    def record(config, settings):
        config[name] = cfg
        settings.setdefault("Networks", {})[name] = endpoint
    _save_networks(c, record)
    _update_resolv_conf(c)


def _update_resolv_conf(c: Container) -> None:
    """A running container that joined or left a user-defined network asks the DNS
    servers of the networks it is on now (the host's resolvers when none is left)."""
    write_resolv_conf(c, network.dns_servers(network.endpoints_config(c.state)))


def disconnect(ref: str, network_ref: str, force: bool = False) -> None:
    """``network disconnect [-f] NETWORK CONTAINER``. With ``-f``, a network that is gone
    is still taken off the container's list, and a container that is gone has its
    endpoint on the network released."""
    try:
        rec = records.get(network_ref)
    except NotFound:
        if not force:
            raise
        rec = None
    try:
        c = reconcile(resolve(ref))
    except NotFound:
        if not (force and rec and network.release_endpoint_by_name(rec, ref)):
            raise
        return
    name = rec["Name"] if rec else network_ref
    mode = network.network_mode(c.state)
    if mode == "host" or name == "host":
        raise Conflict(ERR_HOST)
    if mode == "none" or mode.startswith("container:"):
        raise Conflict(f"container {c.id} is not connected to the network {name}")
    running = c.state["State"].get("Running")
    if name not in network.endpoints_config(c.state):
        if running:
            raise Conflict(f"container {c.id} is not connected to network {name}")
        raise Conflict(f"container {c.id} is not connected to the network {name}")
    ifname = network.detach_endpoint(c.state, rec) if (running and rec) else None

    def forget(config, settings):
        config.pop(name, None)
        gone = (settings.get("Networks") or {}).pop(name, None)
        if ifname == "eth0":
            settings["Ports"] = {}
        if gone and settings.get("IPAddress") == gone.get("IPAddress"):
            settings.update(Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
    _save_networks(c, forget)
    if running:
        _update_resolv_conf(c)
