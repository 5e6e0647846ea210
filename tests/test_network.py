"""Networking without the engine: the hooks driven directly with a ``sleep`` in its own
network namespace standing in for a container (see helpers_network.py).

What a user would see: an ``eth0`` with the next free address, a default route via the
bridge, ``lo`` up; two namespaces talking over the bridge; a published port answering
on 127.0.0.1; twenty at once getting twenty addresses; nothing left afterwards.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from conftest import needs_root
from helpers_network import (fake_state, http_get, netns, private_bridge,  # noqa: F401
                             remove_bridges, wait_for_port)

from minidocker.errors import Conflict, InvalidInput


# ----------------------------------------------------------------------- pure parts
def test_ipam_is_serial_skips_gateway_and_reuses_only_after_wrapping(data_root):
    from minidocker import paths
    from minidocker.network import ipam
    subnet = ipaddress.ip_network("10.9.9.0/29")  # hosts .1-.6; .1 is the gateway
    with paths.locked("networks"):
        got = [ipam.allocate("n", subnet, "10.9.9.1", {"Container": f"c{i}"}) for i in range(3)]
        assert got == ["10.9.9.2", "10.9.9.3", "10.9.9.4"]
        assert ipam.release("n", "c1") == ["10.9.9.3"]
        # serial: the next one after the last handed out, not the hole just freed
        assert ipam.allocate("n", subnet, "10.9.9.1", {"Container": "c3"}) == "10.9.9.5"
        assert ipam.allocate("n", subnet, "10.9.9.1", {"Container": "c4"}) == "10.9.9.6"
        # wrapped around: now the freed .3 comes back
        assert ipam.allocate("n", subnet, "10.9.9.1", {"Container": "c5"}) == "10.9.9.3"
        with pytest.raises(Conflict, match="no available IPv4 addresses"):
            ipam.allocate("n", subnet, "10.9.9.1", {"Container": "c6"})
    leases = json.load(open(os.path.join(data_root, "networks", "n", "leases.json")))
    assert sorted(leases["leases"]) == ["10.9.9.2", "10.9.9.3", "10.9.9.4", "10.9.9.5", "10.9.9.6"]


def test_publish_and_expose_specs_follow_docker():
    from minidocker.network.ports import parse_expose, parse_publish
    assert parse_publish(["8080:80"]) == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert parse_publish(["127.0.0.1:8080:80/udp"]) == {"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert parse_publish(["127.0.0.1::80"]) == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert parse_publish(["80"]) == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}
    assert parse_publish(["8000-8001:80-81"]) == {"80/tcp": [{"HostIp": "", "HostPort": "8000"}],
                                                  "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}
    assert parse_expose(["80", "53/udp", "7000-7001"]) == {"80/tcp": {}, "53/udp": {}, "7000/tcp": {},
                                                           "7001/tcp": {}}
    for bad in ["http:80", "8080:80/icmp", "1.2.3:80:80", "70000:80"]:
        with pytest.raises(InvalidInput):
            parse_publish([bad])


def test_mac_address_is_dockers_rule():
    from minidocker.network.veth import mac_for
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


# ----------------------------------------------------------------------- kernel
def _addr_lines(ns):
    return ns.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout


@needs_root
def test_attach_gives_eth0_next_address_route_and_lo(private_bridge, netns, data_root):
    import minidocker.network as net
    a, b = netns(), netns()
    sa, sb = fake_state("a"), fake_state("b")
    settings = net.attach_container(sa, a.pid)
    net.attach_container(sb, b.pid)
    base = ipaddress.ip_network(private_bridge["subnet"])
    prefix = base.prefixlen
    assert settings["IPAddress"] == str(base.network_address + 2)
    assert settings["Gateway"] == private_bridge["gateway"]
    assert settings["Networks"]["bridge"]["IPAddress"] == settings["IPAddress"]
    # what the slide shows: `ip addr ls dev eth0 | grep global`
    assert f"inet {base.network_address + 2}/{prefix}" in _addr_lines(a)
    assert f"inet {base.network_address + 3}/{prefix}" in _addr_lines(b)
    assert f"default via {private_bridge['gateway']} dev eth0" in a.run("ip", "route").stdout
    assert "UP" in a.run("ip", "link", "show", "lo").stdout
    assert settings["MacAddress"] in a.run("ip", "link", "show", "eth0").stdout
    assert sorted(os.listdir(f"/sys/class/net/{private_bridge['bridge']}/brif")) == \
        sorted(["veth" + sa["Id"][:11], "veth" + sb["Id"][:11]])
    # the host reaches the container through the bridge
    assert a.run("busybox", "ping", "-c1", "-W2", private_bridge["gateway"]).returncode == 0
    net.detach_container(sa)
    net.detach_container(sa)  # idempotent
    assert not os.path.exists(f"/sys/class/net/veth{sa['Id'][:11]}")
    assert os.path.exists(f"/sys/class/net/{private_bridge['bridge']}")  # b still uses it
    net.detach_container(sb)
    # the last container left: the default bridge goes too
    assert not os.path.exists(f"/sys/class/net/{private_bridge['bridge']}")


@needs_root
def test_two_namespaces_talk_over_the_bridge(private_bridge, netns, tmp_path):
    import minidocker.network as net
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from a\n")
    a, b = netns(), netns()
    sa, sb = fake_state("a"), fake_state("b")
    ip_a = net.attach_container(sa, a.pid)["IPAddress"]
    net.attach_container(sb, b.pid)
    httpd = a.spawn("busybox", "httpd", "-f", "-p", "80", "-h", str(www))
    try:
        for _ in range(50):
            r = b.run("busybox", "wget", "-q", "-O-", f"http://{ip_a}/")
            if r.returncode == 0:
                break
        assert r.stdout == "hello from a\n", r.stderr
    finally:
        httpd.kill()
        httpd.wait()
        net.detach_container(sa)
        net.detach_container(sb)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _iptables_rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


@needs_root
def test_published_port_serves_127_0_0_1_and_is_removed(private_bridge, netns, tmp_path):
    import minidocker.network as net
    from minidocker.network.ports import parse_publish
    (tmp_path / "index.html").write_text("published\n")
    a = netns()
    host_port = _free_port()
    state = fake_state("web", PortBindings=parse_publish([f"{host_port}:80"]),
                       ExposedPorts={"80/tcp": {}, "443/tcp": {}})
    settings = net.attach_container(state, a.pid)
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(host_port)}],
                                 "443/tcp": None}
    httpd = a.spawn("busybox", "httpd", "-f", "-p", "80", "-h", str(tmp_path))
    try:
        wait_for_port("127.0.0.1", host_port)
        assert http_get(f"http://127.0.0.1:{host_port}/") == "published\n"
        # any address of the host works too: here the one it has on our own bridge
        assert http_get(f"http://{private_bridge['gateway']}:{host_port}/") == "published\n"
        # a second container cannot take the same host port
        b = netns()
        other = fake_state("other", PortBindings=parse_publish([f"{host_port}:80"]))
        with pytest.raises(Conflict, match="port is already allocated"):
            net.attach_container(other, b.pid)
        assert not os.path.exists(f"/sys/class/net/veth{other['Id'][:11]}")  # rolled back
    finally:
        httpd.kill()
        httpd.wait()
    assert f"minidocker container {state['Id'][:12]}" in _iptables_rules()
    net.detach_container(state)
    assert f"minidocker container {state['Id'][:12]}" not in _iptables_rules()
    assert private_bridge["bridge"] not in _iptables_rules()


@needs_root
def test_publish_all_picks_free_host_ports(private_bridge, netns):
    import minidocker.network as net
    a = netns()
    state = fake_state("p", PublishAllPorts=True, ExposedPorts={"80/tcp": {}, "53/udp": {}})
    settings = net.attach_container(state, a.pid)
    try:
        tcp = int(settings["Ports"]["80/tcp"][0]["HostPort"])
        udp = int(settings["Ports"]["53/udp"][0]["HostPort"])
        low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        assert low <= tcp <= high and low <= udp <= high
        from minidocker.network.ports import format_port_lines
        assert format_port_lines(settings["Ports"]) == [f"53/udp -> 0.0.0.0:{udp}",
                                                        f"80/tcp -> 0.0.0.0:{tcp}"]
    finally:
        net.detach_container(state)


def _attach_in_child(args):
    root, bridge, subnet, pid, state = args
    os.environ.update(MINIDOCKER_ROOT=root, MINIDOCKER_BRIDGE=bridge, MINIDOCKER_BRIDGE_SUBNET=subnet)
    import minidocker.network as net
    return net.attach_container(state, pid)["IPAddress"]


@needs_root
def test_twenty_at_once_get_twenty_addresses(private_bridge, netns, data_root):
    import minidocker.network as net
    procs = [netns() for _ in range(20)]
    states = [fake_state(f"c{i}") for i in range(20)]
    jobs = [(data_root, private_bridge["bridge"], private_bridge["subnet"], p.pid, s)
            for p, s in zip(procs, states)]
    try:
        with ProcessPoolExecutor(max_workers=20) as pool:
            addresses = list(pool.map(_attach_in_child, jobs))
        assert len(set(addresses)) == 20
        for p, ip in zip(procs, addresses):
            assert f"inet {ip}/" in _addr_lines(p)
    finally:
        for s in states:
            net.detach_container(s)
    assert not os.path.exists(f"/sys/class/net/{private_bridge['bridge']}")


@needs_root
def test_cleanup_stale_releases_what_a_dead_container_held(private_bridge, netns, data_root):
    import minidocker.network as net
    from minidocker.network import ipam
    from minidocker.network.ports import parse_publish
    a = netns()
    state = fake_state("crashy", PortBindings=parse_publish([f"{_free_port()}:80"]))
    net.attach_container(state, a.pid)
    a.stop()  # the container dies and nobody calls detach (minidocker was killed)
    assert ipam.leases_of("bridge")
    assert net.cleanup_stale() == [state["Id"]]
    assert ipam.leases_of("bridge") == {}
    assert f"minidocker container {state['Id'][:12]}" not in _iptables_rules()
    assert private_bridge["bridge"] not in _iptables_rules()
    assert not os.path.exists(f"/sys/class/net/{private_bridge['bridge']}")
    assert net.cleanup_stale() == []


def _cli(root, *args):
    return subprocess.run([sys.executable, "-m", "minidocker", *args], capture_output=True, text=True,
                          env=dict(os.environ, MINIDOCKER_ROOT=root), timeout=60)


@needs_root
def test_user_defined_network_lifecycle_and_names(private_bridge, netns, data_root):
    import minidocker.network as net
    from minidocker.kernel import processes
    from helpers_network import free_test_subnet
    subnet = free_test_subnet(exclude=[private_bridge["subnet"]])
    r = _cli(data_root, "network", "create", "--subnet", subnet, "backend")
    assert r.returncode == 0, r.stderr
    net_id = r.stdout.strip()
    bridge = "br-" + net_id[:12]
    try:
        assert os.path.isdir(f"/sys/class/net/{bridge}/bridge")
        ls = _cli(data_root, "network", "ls").stdout.splitlines()
        assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [l.split()[1:] for l in ls[1:]] == [["backend", "bridge", "local"], ["bridge", "bridge", "local"],
                                                    ["host", "host", "local"], ["none", "null", "local"]]
        assert _cli(data_root, "network", "create", "backend").returncode == 125
        # two members find each other by name through the network's DNS server, which
        # the first one to join started on the gateway's address
        a, b = netns(), netns()
        sa, sb = fake_state("web", NetworkMode="backend"), fake_state("client", NetworkMode="backend")
        settings_a = net.attach_container(sa, a.pid)
        gateway = str(next(ipaddress.ip_network(subnet).hosts()))
        server = json.load(open(os.path.join(data_root, "networks", "backend", "dns.json")))
        assert server["Address"] == gateway and server["Port"] == 53
        settings_b = net.attach_container(sb, b.pid)
        ip_a = settings_a["Networks"]["backend"]["IPAddress"]
        ip_b = settings_b["Networks"]["backend"]["IPAddress"]
        assert ipaddress.ip_address(ip_a) in ipaddress.ip_network(subnet)
        assert json.load(open(os.path.join(data_root, "networks", "backend", "dns.json"))) == server
        assert net.dns_servers(["backend", "bridge"]) == [gateway]
        r = b.run("busybox", "nslookup", "web", gateway)
        assert f"Name:\tweb\nAddress: {ip_a}\n" in r.stdout, r.stdout + r.stderr
        r = a.run("busybox", "nslookup", sb["Id"][:12], gateway)  # the short id, from the other side
        assert f"Address: {ip_b}\n" in r.stdout, r.stdout + r.stderr
        inspect = json.loads(_cli(data_root, "network", "inspect", "backend").stdout)[0]
        assert inspect["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": str(next(ipaddress.ip_network(subnet).hosts()))}]
        assert sorted(inspect["Containers"]) == sorted([sa["Id"], sb["Id"]])
        r = _cli(data_root, "network", "rm", "backend")
        assert r.returncode == 1 and "has active endpoints" in r.stderr
        net.detach_container(sb)
        r = a.run("busybox", "nslookup", "client", gateway)
        assert r.returncode != 0 and "can't find client" in r.stdout, r.stdout + r.stderr
        net.detach_container(sa)  # the last one: the server goes with it
        assert not os.path.exists(os.path.join(data_root, "networks", "backend", "dns.json"))
        assert not processes.is_alive(server["Pid"], server["PidStart"])
        r = _cli(data_root, "network", "rm", "backend")
        assert r.returncode == 0 and r.stdout == "backend\n"
        assert not os.path.exists(f"/sys/class/net/{bridge}")
        assert _cli(data_root, "network", "inspect", "backend").returncode == 1
        assert _cli(data_root, "network", "rm", "bridge").returncode == 1
    finally:
        remove_bridges([bridge])


@needs_root
def test_two_data_roots_sharing_a_bridge_never_share_an_address(private_bridge, netns, data_root,
                                                                 tmp_path, monkeypatch):
    import minidocker.network as net
    a, b = netns(), netns()
    sa, sb = fake_state("a"), fake_state("b")
    ip_a = net.attach_container(sa, a.pid)["IPAddress"]
    other_root = tmp_path / "other-root"
    other_root.mkdir()
    monkeypatch.setenv("MINIDOCKER_ROOT", str(other_root))
    try:
        ip_b = net.attach_container(sb, b.pid)["IPAddress"]  # its own leases, the same bridge
        assert ip_b != ip_a
        net.detach_container(sb)
    finally:
        monkeypatch.setenv("MINIDOCKER_ROOT", data_root)
        net.detach_container(sa)
    assert not os.path.exists(f"/run/minidocker/addresses/{private_bridge['bridge']}")


@needs_root
def test_internal_network_has_no_nat_and_no_way_out(data_root):
    import minidocker.network as net
    from helpers_network import free_test_subnet
    rec = net.create_network("isolated", subnet=free_test_subnet(), internal=True)
    bridge = "br-" + rec["Id"][:12]
    try:
        forward = subprocess.run(["iptables", "-S", "MINIDOCKER-FORWARD"], capture_output=True, text=True).stdout
        assert f"-A MINIDOCKER-FORWARD -i {bridge} ! -o {bridge}" in forward and "-j DROP" in forward
        nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert bridge not in nat
        assert net.records.get("isolated")["Internal"] is True
    finally:
        net.remove_network("isolated")
    assert bridge not in _iptables_rules()
    assert not os.path.exists(f"/sys/class/net/{bridge}")


@needs_root
def test_a_bridge_left_by_a_deleted_data_root_is_removed_by_the_next_command(tmp_path, monkeypatch):
    import shutil
    import minidocker.network as net
    from helpers_network import free_test_subnet
    gone = tmp_path / "gone-root"
    gone.mkdir()
    monkeypatch.setenv("MINIDOCKER_ROOT", str(gone))
    rec = net.create_network("leftover", subnet=free_test_subnet())
    bridge = "br-" + rec["Id"][:12]
    try:
        shutil.rmtree(gone)  # the data root goes, the network was never removed
        assert os.path.exists(f"/sys/class/net/{bridge}")
        other = tmp_path / "next-root"
        other.mkdir()
        monkeypatch.setenv("MINIDOCKER_ROOT", str(other))
        assert _cli(str(other), "network", "ls").returncode == 0  # any networking command
        assert not os.path.exists(f"/sys/class/net/{bridge}")
        assert bridge not in _iptables_rules()
    finally:
        remove_bridges([bridge])


@needs_root
def test_port_published_on_127_0_0_1_only_is_not_on_other_host_addresses(private_bridge, netns, tmp_path):
    import minidocker.network as net
    from minidocker.network.ports import parse_publish
    (tmp_path / "index.html").write_text("local only\n")
    a = netns()
    host_port = _free_port()
    state = fake_state("local", PortBindings=parse_publish([f"127.0.0.1:{host_port}:80"]))
    settings = net.attach_container(state, a.pid)
    httpd = a.spawn("busybox", "httpd", "-f", "-p", "80", "-h", str(tmp_path))
    try:
        assert settings["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]
        wait_for_port("127.0.0.1", host_port)
        assert http_get(f"http://127.0.0.1:{host_port}/") == "local only\n"
        with pytest.raises(OSError):  # nothing listens there: the connection is refused
            socket.create_connection((private_bridge["gateway"], host_port), timeout=2).close()
    finally:
        httpd.kill()
        httpd.wait()
        net.detach_container(state)
