"""Container networking: the bridge, a veth pair per container, addresses, published ports.

This file only names the package's API; read the modules bottom-up:

* :mod:`.records` (the networks: ``bridge``, ``host``, ``none`` and user-defined ones,
  as JSON records), :mod:`.ipam` (who has which address), :mod:`.ports` (``-p``),
  :mod:`.hosts` (a container's own lines in its /etc/hosts);
* :mod:`.bridge` (the Linux bridge), :mod:`.veth` (the cable into the container),
  :mod:`.firewall` (NAT and forwarding with iptables);
* :mod:`minidocker.network.attach`: the engine's hooks, a container on its networks --
  :func:`attach_container` (in the container's monitor, before its command runs),
  :func:`detach_container` (when it stops), :func:`cleanup_stale` (what containers that
  died without a detach still hold), :func:`attach_endpoint` / :func:`detach_endpoint`
  (``network connect`` / ``disconnect`` of a running container);
* :mod:`.verbs`: the ``network`` verbs on a whole network -- :func:`create_network`,
  :func:`remove_network`, :func:`prune_networks`, :func:`containers_on` (``network inspect``);
* :mod:`.dns`: names by DNS on user-defined networks -- one DNS server process per
  network (:mod:`.dns_server`, answering from :mod:`.dns_names`), started with its
  first container and stopped with its last; :func:`dns_servers` is what a container's
  /etc/resolv.conf names.

Links, addresses and routes are made with pyroute2's ``IPRoute`` (netlink), NAT with
iptables. pyroute2 is imported only inside the functions that need it (~100 ms), and the
container monitor loads this package only for a container on a bridge: one on
``--network none`` or ``host`` pays for neither (the runtime brings its ``lo`` up).
"""

from __future__ import annotations

from .attach import (attach_container, attach_endpoint, cleanup_stale, detach_container,
                     detach_endpoint, endpoints_config, endpoints_list, network_mode,
                     release_endpoint_by_name, release_stale_claims, stale_holdings)
from .dns import dns_servers, keep_running as keep_dns_running
from .dns import problems as dns_problems, repair as repair_dns
from .verbs import containers_on, create_network, prune_networks, remove_network

__all__ = [
    # the engine's hooks (network/attach.py)
    "attach_container", "detach_container", "cleanup_stale", "attach_endpoint",
    "detach_endpoint", "release_endpoint_by_name", "network_mode", "endpoints_config",
    "endpoints_list",
    # what dead containers still hold, for system check (network/attach.py)
    "stale_holdings", "release_stale_claims",
    # the network verbs (network/verbs.py)
    "create_network", "remove_network", "prune_networks", "containers_on",
    # names by DNS (network/dns.py)
    "dns_servers", "keep_dns_running", "dns_problems", "repair_dns",
]
