"""``network connect`` and ``network disconnect``: a container joins and leaves networks
after ``run``, as in Docker.

Two user-defined networks, A and B. A container on A connected to B gets ``eth1`` with
an address of B, and the containers of B find it by name (and it them), through the
DNS servers of the user-defined networks (test_network_dns.py looks at those closely).
All traffic stays on this module's own bridges.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from helpers_network import free_test_subnet, mdnet  # noqa: F401

HTTPD = "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def nets(mdnet):
    """Networks ``neta`` and ``netb`` (subnets of their own), and ``web``: an httpd on B."""
    md = mdnet
    sub_a = free_test_subnet(exclude=[md.subnet])
    sub_b = free_test_subnet(exclude=[md.subnet, sub_a])
    md.out("network", "create", "--subnet", sub_a, "neta")
    md.out("network", "create", "--subnet", sub_b, "netb")
    web = md.out("run", "-d", "--name", "web", "--network", "netb", "busybox", "sh", "-c", HTTPD).strip()
    try:
        yield md, ipaddress.ip_network(sub_a), ipaddress.ip_network(sub_b), web
    finally:
        md.cleanup()
        md("network", "rm", "neta", "netb")


def _addr(md, name, ifname):
    """The container's IPv4 address on ``ifname`` (None when it has no such interface)."""
    r = md("exec", name, "ip", "-o", "-4", "addr", "show", "dev", ifname)
    if r.returncode != 0:
        return None
    return ipaddress.ip_interface(r.stdout.split()[3])


def _wget(md, name, url):
    for _ in range(40):
        r = md("exec", name, "wget", "-q", "-O-", url)
        if r.returncode == 0:
            return r.stdout
    raise AssertionError(f"wget {url} from {name}: {r.returncode} {r.stderr}")


def _interfaces_of(cid):
    """Host interfaces named after the container: its veth pairs' host ends."""
    return sorted(n for n in os.listdir("/sys/class/net")
                  if n.startswith((f"veth{cid[:8]}", f"tmp{cid[:8]}")))


def _leases(md, network):
    path = os.path.join(md.root, "networks", network, "leases.json")
    return json.load(open(path))["leases"] if os.path.exists(path) else {}


def test_connect_running_container_gets_eth1_and_is_found_by_name(nets):
    md, net_a, net_b, web = nets
    cid = md.out("run", "-d", "--name", "client", "--network", "neta", "busybox", "sleep", "300").strip()
    try:
        assert _addr(md, "client", "eth1") is None
        assert md("network", "connect", "--alias", "front", "netb", "client").returncode == 0
        eth1 = _addr(md, "client", "eth1")
        assert eth1 is not None and eth1.ip in net_b and eth1.network == net_b
        assert _addr(md, "client", "eth0").ip in net_a  # the first network stays as it was
        endpoint = json.loads(md.out("inspect", "-f", "{{json .NetworkSettings.Networks.netb}}", "client"))
        assert endpoint["IPAddress"] == str(eth1.ip)
        assert endpoint["Aliases"] == ["front", cid[:12]]
        # by name, both ways, and by the alias
        assert md("exec", "client", "ping", "-c1", "-W2", "web").returncode == 0
        assert _wget(md, "client", "http://web/") == f"hello from {web[:12]}\n"
        assert md("exec", "web", "ping", "-c1", "-W2", "client").returncode == 0
        assert md("exec", "web", "ping", "-c1", "-W2", "front").returncode == 0
        containers = json.loads(md.out("network", "inspect", "-f", "{{json .Containers}}", "netb"))
        assert containers[cid]["IPv4Address"] == f"{eth1.ip}/{net_b.prefixlen}"

        assert md("network", "disconnect", "netb", "client").returncode == 0
        assert _addr(md, "client", "eth1") is None
        assert _addr(md, "client", "eth0").ip in net_a
        r = md("exec", "client", "ping", "-c1", "-W2", "web")
        assert r.returncode != 0 and "bad address" in r.stderr
        assert "client" not in md.out("exec", "web", "cat", "/etc/hosts")
        assert str(eth1.ip) not in md.out("exec", "client", "cat", "/etc/hosts")
        assert "netb" not in json.loads(md.out("inspect", "-f", "{{json .NetworkSettings.Networks}}", "client"))
        assert cid not in json.dumps(_leases(md, "netb"))
        assert _interfaces_of(cid) == [f"veth{cid[:11]}"]
        # and back again: the next free address of B, eth1 again
        md.out("network", "connect", "netb", "client")
        assert _addr(md, "client", "eth1").ip in net_b
    finally:
        md("rm", "-f", "client")
    assert _interfaces_of(cid) == []
    assert cid not in json.dumps(_leases(md, "netb")) + json.dumps(_leases(md, "neta"))


def test_connect_a_stopped_container_attaches_it_at_start(nets):
    md, net_a, net_b, web = nets
    cid = md.out("create", "--name", "later", "--network", "neta", "busybox", "sleep", "300").strip()
    try:
        md.out("network", "connect", "netb", "later")
        # again, while stopped: accepted without a word, as dockerd does, and the first
        # settings stay (no alias added); only a running container gets the conflict
        r = md("network", "connect", "--alias", "notthis", "netb", "later")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        endpoints = json.loads(md.out("inspect", "-f", "{{json .NetworkingConfig.Endpoints}}", "later"))
        assert [(e["Network"], e.get("Aliases")) for e in endpoints] == [("neta", None), ("netb", None)]
        md.out("start", "later")
        r = md("network", "connect", "netb", "later")
        assert (r.returncode, r.stderr) == (1, "Error response from daemon: endpoint with name later "
                                               "already exists in network netb\n")
        assert _addr(md, "later", "eth0").ip in net_a
        assert _addr(md, "later", "eth1").ip in net_b
        assert _wget(md, "later", "http://web/") == f"hello from {web[:12]}\n"
        assert md("exec", "web", "ping", "-c1", "-W2", "later").returncode == 0
        md.out("stop", "-t", "0", "later")
        assert _interfaces_of(cid) == []
        assert cid not in json.dumps(_leases(md, "netb"))
        assert "later" not in md.out("exec", "web", "cat", "/etc/hosts")
        # the record stays: the next start joins B again; a disconnect while stopped
        # takes it off, and the start after that does not
        md.out("start", "later")
        assert _addr(md, "later", "eth1").ip in net_b
        md.out("stop", "-t", "0", "later")
        md.out("network", "disconnect", "netb", "later")
        md.out("start", "later")
        assert _addr(md, "later", "eth1") is None
        assert md("exec", "later", "ping", "-c1", "-W2", "web").returncode != 0
    finally:
        md("rm", "-f", "later")
    assert _interfaces_of(cid) == []


def test_connect_to_the_default_bridge_and_nothing_left_after_rm(nets):
    md, net_a, _net_b, _web = nets
    cid = md.out("run", "-d", "--name", "multi", "--network", "neta", "busybox", "sleep", "300").strip()
    try:
        md.out("network", "connect", "bridge", "multi")
        md.out("network", "connect", "netb", "multi")
        assert _addr(md, "multi", "eth1").ip in ipaddress.ip_network(md.subnet)
        assert _addr(md, "multi", "eth2") is not None
        gateway = str(next(ipaddress.ip_network(md.subnet).hosts()))
        assert md("exec", "multi", "ping", "-c1", "-W2", gateway).returncode == 0
        assert len(_interfaces_of(cid)) == 3
    finally:
        md("rm", "-f", "multi")
    assert _interfaces_of(cid) == []
    for network in ("bridge", "neta", "netb"):
        assert cid not in json.dumps(_leases(md, network))
    assert not os.path.exists(f"/sys/class/net/{md.bridge}")  # its last container left
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert cid[:12] not in rules and md.bridge not in rules


def test_errors_are_dockers(nets):
    md = nets[0]
    md.out("run", "-d", "--name", "plain", "--network", "neta", "busybox", "sleep", "300")
    md.out("run", "-d", "--name", "onhost", "--network", "host", "busybox", "sleep", "300")
    md.out("run", "-d", "--name", "isolated", "--network", "none", "busybox", "sleep", "300")
    cid = md.out("inspect", "-f", "{{.Id}}", "plain").strip()
    host_msg = "container cannot be disconnected from host network or connected to host network"
    none_msg = ("container cannot be connected to multiple networks with one of the networks "
                "in private (none) mode")
    try:
        for args, message in [
            (("connect", "neta", "plain"), "endpoint with name plain already exists in network neta"),
            (("connect", "nosuchnet", "plain"), "network nosuchnet not found"),
            (("connect", "netb", "nosuchbox"), "No such container: nosuchbox"),
            (("connect", "netb", "onhost"), host_msg),
            (("connect", "host", "plain"), host_msg),
            (("connect", "netb", "isolated"), none_msg),
            (("connect", "none", "plain"), none_msg),
            (("connect", "--alias", "x", "bridge", "plain"),
             "network-scoped alias is supported only for containers in user defined networks"),
            (("disconnect", "netb", "plain"), f"container {cid} is not connected to network netb"),
            (("disconnect", "nosuchnet", "plain"), "network nosuchnet not found"),
            (("disconnect", "host", "onhost"), host_msg),
        ]:
            r = md("network", *args)
            assert (r.returncode, r.stdout, r.stderr) == (1, "", f"Error response from daemon: {message}\n"), args
        assert json.loads(md.out("inspect", "-f", "{{json .NetworkSettings.Networks}}", "plain")).keys() == {"neta"}
    finally:
        md("rm", "-f", "plain", "onhost", "isolated")


def test_connect_with_a_chosen_address(nets):
    md, _net_a, net_b, _web = nets
    wanted = str(net_b.network_address + 200)
    md.out("run", "-d", "--name", "fixed", "--network", "neta", "busybox", "sleep", "300")
    try:
        md.out("network", "connect", "--ip", wanted, "netb", "fixed")
        assert str(_addr(md, "fixed", "eth1").ip) == wanted
        ipam = md.out("inspect", "-f", "{{json .NetworkSettings.Networks.netb.IPAMConfig}}", "fixed")
        assert json.loads(ipam) == {"IPv4Address": wanted}
        md.out("run", "-d", "--name", "fixed2", "--network", "neta", "busybox", "sleep", "300")
        r = md("network", "connect", "--ip", wanted, "netb", "fixed2")
        assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: Address already in use")
        assert _addr(md, "fixed2", "eth1") is None
    finally:
        md("rm", "-f", "fixed", "fixed2")
