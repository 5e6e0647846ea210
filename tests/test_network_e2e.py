"""The networking, mysql-image and service-discovery slides through the ``minidocker``
command: addresses, two containers talking, links, published ports, user networks.

A busybox ``httpd`` stands in for the database server of the slides; clients use busybox
``wget``. All traffic stays on this machine (127.0.0.1 and our own bridge).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import pytest

from helpers_network import free_test_subnet, http_get, mdnet, wait_for_port  # noqa: F401

HTTPD = "mkdir -p /www && echo \"$GREETING from $(hostname)\" > /www/index.html && exec httpd -f -p 80 -h /www"


def _ip(md, name):
    return md.out("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).strip()


def _wget(md, *run_args, url):
    """``wget`` from a fresh client container, retried while the server starts."""
    for _ in range(40):
        r = md("run", "--rm", *run_args, "busybox", "wget", "-q", "-O-", url)
        if r.returncode == 0:
            return r.stdout
    raise AssertionError(f"wget {url}: {r.returncode} {r.stderr}")


@pytest.fixture
def web(mdnet):
    """A detached web server container, removed after the test."""
    md = mdnet
    port = _free_port()
    cid = md.out("run", "-d", "--name", "web", "-e", "GREETING=hello", "-e", "MYSQL_ROOT_PASSWORD=secret",
                 "--expose", "80", "--expose", "3306", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD).strip()
    yield md, cid, port
    md("rm", "-f", "web")


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_run_gets_the_next_address(mdnet):
    net = ipaddress.ip_network(mdnet.subnet)
    seen = []
    for _ in range(2):
        out = mdnet.out("run", "--rm", "busybox", "sh", "-c", "ip addr ls dev eth0 | grep global")
        seen.append(out.split()[1])
    first = ipaddress.ip_address(seen[0].split("/")[0])
    assert first in net
    # serial allocation: the slide's .56, .57, ... even though the first one was released
    assert seen[1] == f"{first + 1}/{net.prefixlen}"


def test_two_containers_talk_by_ip_and_link_alias(web):
    md, cid, _port = web
    ip = _ip(md, "web")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(md.subnet)
    assert _wget(md, url=f"http://{ip}/") == f"hello from {cid[:12]}\n"
    assert _wget(md, "--link", "web:webserver", url="http://webserver/") == f"hello from {cid[:12]}\n"


def test_link_environment_is_dockers(web):
    md, cid, _port = web
    ip = _ip(md, "web")
    out = md.out("run", "--rm", "--name", "client", "--link", "web:db-server", "busybox", "env")
    env = sorted(line for line in out.splitlines() if line.startswith("DB_SERVER_"))
    assert env == sorted([
        "DB_SERVER_NAME=/client/db-server",
        f"DB_SERVER_PORT=tcp://{ip}:80",
        f"DB_SERVER_PORT_80_TCP=tcp://{ip}:80",
        f"DB_SERVER_PORT_80_TCP_ADDR={ip}",
        "DB_SERVER_PORT_80_TCP_PORT=80",
        "DB_SERVER_PORT_80_TCP_PROTO=tcp",
        f"DB_SERVER_PORT_3306_TCP=tcp://{ip}:3306",
        f"DB_SERVER_PORT_3306_TCP_ADDR={ip}",
        "DB_SERVER_PORT_3306_TCP_PORT=3306",
        "DB_SERVER_PORT_3306_TCP_PROTO=tcp",
        "DB_SERVER_ENV_GREETING=hello",
        "DB_SERVER_ENV_MYSQL_ROOT_PASSWORD=secret",
    ])
    hosts = md.out("run", "--rm", "--link", "web:db-server", "busybox", "cat", "/etc/hosts")
    assert f"{ip}\tdb-server {cid[:12]} web" in hosts.splitlines()


def test_link_to_a_stopped_container_is_refused(mdnet):
    mdnet.out("create", "--name", "sleeper", "busybox", "true")
    try:
        r = mdnet("run", "--rm", "--link", "sleeper:s", "busybox", "true")
        assert r.returncode == 125
        assert "Cannot link to a non running container: /sleeper AS" in r.stderr
    finally:
        mdnet("rm", "sleeper")


def test_published_port_serves_the_host_on_127_0_0_1(web):
    md, cid, port = web
    assert md.out("port", "web") == f"80/tcp -> 0.0.0.0:{port}\n"
    assert md.out("port", "web", "80") == f"0.0.0.0:{port}\n"
    assert md("port", "web", "3306").returncode == 125
    wait_for_port("127.0.0.1", port)
    assert http_get(f"http://127.0.0.1:{port}/") == f"hello from {cid[:12]}\n"
    ports = json.loads(md.out("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"))
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}], "3306/tcp": None}
    # the same host port cannot be published twice
    r = md("run", "-d", "-p", f"{port}:80", "busybox", "sleep", "5")
    assert r.returncode == 125 and "port is already allocated" in r.stderr


def test_detached_service_logs_and_publish_all(mdnet):
    cid = mdnet.out("run", "-d", "--name", "svc", "-P", "--expose", "80", "-e", "GREETING=hi",
                    "busybox", "sh", "-c", "echo service ready; " + HTTPD).strip()
    try:
        line = mdnet.out("port", "svc").strip()
        assert line.startswith("80/tcp -> 0.0.0.0:")
        port = int(line.rsplit(":", 1)[1])
        wait_for_port("127.0.0.1", port)
        assert http_get(f"http://127.0.0.1:{port}/") == f"hi from {cid[:12]}\n"
        assert "service ready" in mdnet.out("logs", "svc")
    finally:
        mdnet("rm", "-f", "svc")


def test_user_defined_network_finds_containers_by_name(mdnet):
    subnet = free_test_subnet(exclude=[mdnet.subnet])
    net_id = mdnet.out("network", "create", "--subnet", subnet, "appnet").strip()
    try:
        cid = mdnet.out("run", "-d", "--network", "appnet", "--name", "api", "-e", "GREETING=net",
                        "busybox", "sh", "-c", HTTPD).strip()
        ip = mdnet.out("inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "api").strip()
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
        assert _wget(mdnet, "--network", "appnet", url="http://api/") == f"net from {cid[:12]}\n"
        hosts = mdnet.out("exec", "api", "cat", "/etc/hosts").splitlines()
        assert f"{ip}\t{cid[:12]}" in hosts  # its own address under its hostname
        r = mdnet("network", "rm", "appnet")
        assert r.returncode == 1 and "has active endpoints" in r.stderr
        mdnet.out("rm", "-f", "api")
        assert mdnet.out("network", "rm", "appnet") == "appnet\n"
    finally:
        mdnet("rm", "-f", "api")
        mdnet("network", "rm", "appnet")
    assert not __import__("os").path.exists(f"/sys/class/net/br-{net_id[:12]}")


def test_none_host_and_container_network_modes(mdnet):
    out = mdnet.out("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [l.split(":")[1].strip() for l in out.splitlines()] == ["lo"]
    # --network host: the very namespace of the host (same "net:[inode]")
    out = mdnet.out("run", "--rm", "--network", "host", "busybox", "readlink", "/proc/self/ns/net")
    assert out.strip() == __import__("os").readlink("/proc/self/ns/net")
    mdnet.out("run", "-d", "--name", "holder", "busybox", "sleep", "60")
    try:
        ip = _ip(mdnet, "holder")
        out = mdnet.out("run", "--rm", "--network", "container:holder", "busybox", "sh", "-c",
                        "ip addr ls dev eth0 | grep global")
        assert f"inet {ip}/" in out
    finally:
        mdnet("rm", "-f", "holder")


def test_twenty_containers_started_at_once_get_twenty_addresses(mdnet):
    procs = [subprocess.Popen([sys.executable, "-m", "minidocker", "run", "-d", "--name", f"many{i}",
                               "busybox", "sleep", "60"], env=mdnet.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(20)]
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        addresses = [_ip(mdnet, f"many{i}") for i in range(20)]
        assert len(set(addresses)) == 20
        assert all(ipaddress.ip_address(a) in ipaddress.ip_network(mdnet.subnet) for a in addresses)
    finally:
        mdnet("rm", "-f", *[f"many{i}" for i in range(20)], timeout=120)


def test_nothing_is_left_on_the_host_after_rm(mdnet):
    mdnet.out("run", "-d", "--name", "tmpweb", "-p", f"{_free_port()}:80", "busybox", "sleep", "60")
    cid = mdnet.out("inspect", "-f", "{{.Id}}", "tmpweb").strip()
    import os
    assert os.path.exists(f"/sys/class/net/veth{cid[:11]}")
    mdnet.out("rm", "-f", "tmpweb")
    assert not os.path.exists(f"/sys/class/net/veth{cid[:11]}")
    assert not os.path.exists(f"/sys/class/net/{mdnet.bridge}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert cid[:12] not in rules and mdnet.bridge not in rules


def _monitor_pids(cid):
    """Processes holding the container's monitor.lock open: its monitor."""
    import os
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(f"{cid}/monitor.lock"):
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return found


def test_a_killed_monitor_leaves_nothing_after_the_next_command(mdnet):
    import os
    import signal
    cid = mdnet.out("run", "-d", "--name", "crashy", "-p", f"{_free_port()}:80", "busybox", "sleep", "60").strip()
    monitors = _monitor_pids(cid)
    assert monitors
    for pid in monitors:
        os.kill(pid, signal.SIGKILL)  # minidocker itself dies; the container lives on
    try:
        mdnet.out("ps", "-a")  # the next command notices and cleans up
        assert not os.path.exists(f"/sys/class/net/veth{cid[:11]}")
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert cid[:12] not in rules
        leases = json.load(open(os.path.join(mdnet.root, "networks", "bridge", "leases.json")))
        assert cid not in json.dumps(leases["leases"])
    finally:
        mdnet("rm", "-f", "crashy")
