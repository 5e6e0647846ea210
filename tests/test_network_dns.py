"""Names by DNS on user-defined networks, as a user sees them: busybox ``nslookup`` in
containers asks the network's DNS server (network/dns.py) and prints what it answered.

busybox's ``nslookup NAME`` reads /etc/resolv.conf, asks the first ``nameserver`` for
A and AAAA, and prints::

    Server:		10.210.3.1
    Address:	10.210.3.1:53

    Name:	web
    Address: 10.210.3.2

or ``** server can't find NAME: NXDOMAIN`` (``SERVFAIL``...) and exits 1.

Nothing leaves this machine: the suite's "host resolv.conf" has no resolver
(tests/resolv.conf.offline), and the forwarding test brings a fake resolver of its own
on a 127.0.0.0/8 address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import signal
import socket
import threading
import time

import pytest

from helpers_network import free_test_subnet, mdnet  # noqa: F401

pytestmark = pytest.mark.root


# --------------------------------------------------------------------------- helpers
def nslookup(md, container, name, *server):
    """The addresses ``nslookup`` in ``container`` printed for ``name`` ([] when it
    found none), and its whole output."""
    r = md("exec", container, "nslookup", name, *server)
    out = r.stdout + r.stderr
    found = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("Address: ")]
    assert (r.returncode == 0) == bool(found), out
    return found, out


def ip_on(md, container, network):
    return md.out("inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}",
                  container).strip()


def dns_state(md, network):
    path = os.path.join(md.root, "networks", network, "dns.json")
    return json.load(open(path)) if os.path.exists(path) else None


def alive(pid):
    from minidocker.kernel import processes
    return processes.is_alive(pid)


def wait_until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def monitor_pids(cid):
    """Processes holding the container's monitor.lock open: its monitor."""
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


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def user_net(mdnet):
    """A user-defined network of this test's own; everything on it is removed after."""
    md = mdnet
    name = "dn" + secrets.token_hex(3)
    subnet = free_test_subnet(exclude=[md.subnet])
    md.out("network", "create", "--subnet", subnet, name)
    try:
        yield md, name, ipaddress.ip_network(subnet)
    finally:
        md.cleanup()
        md("network", "rm", name)
        assert not os.path.exists(os.path.join(md.root, "networks", name))


# --------------------------------------------------------------------------- names
def test_names_aliases_ids_and_late_joiners_resolve(user_net):
    md, net, subnet = user_net
    gateway = str(next(subnet.hosts()))
    web = md.out("run", "-d", "--name", "web", "--network", net, "--network-alias", "www",
                 "--network-alias", "front", "busybox", "sleep", "300").strip()
    md.out("run", "-d", "--name", "client", "--network", net, "busybox", "sleep", "300")
    ip_web, ip_client = ip_on(md, "web", net), ip_on(md, "client", net)
    # /etc/resolv.conf points at the network's server; /etc/hosts has the container's own
    # names only, as Docker writes it on a user-defined network
    resolv = md.out("exec", "client", "cat", "/etc/resolv.conf").splitlines()
    assert [l for l in resolv if l.startswith(("nameserver", "options"))] == \
        [f"nameserver {gateway}", "options ndots:0"]
    hosts = md.out("exec", "client", "cat", "/etc/hosts")
    assert "web" not in hosts and ip_web not in hosts
    # by name, by each alias, by the short id, and NAME.NETWORK
    for name in ("web", "www", "front", web[:12], f"web.{net}", "WEB"):
        assert nslookup(md, "client", name)[0] == [ip_web], name
    found, out = nslookup(md, "client", "web")
    assert out.startswith(f"Server:\t\t{gateway}\nAddress:\t{gateway}:53\n")
    assert f"\nName:\tweb\nAddress: {ip_web}\n" in out
    # inspect shows the aliases as Docker does: the given ones, then the short id
    aliases = json.loads(md.out("inspect", "-f", f"{{{{json .NetworkSettings.Networks.{net}.Aliases}}}}", "web"))
    assert aliases == ["www", "front", web[:12]]
    # a container finds itself, by name and by its own alias
    assert nslookup(md, "web", "www")[0] == [ip_web]
    assert nslookup(md, "client", "client")[0] == [ip_client]
    # a late joiner is known at once, to those that were there before it and to itself
    md.out("run", "-d", "--name", "late", "--network", net, "--network-alias", "newcomer",
           "busybox", "sleep", "300")
    ip_late = ip_on(md, "late", net)
    assert nslookup(md, "web", "late")[0] == [ip_late]
    assert nslookup(md, "client", "newcomer")[0] == [ip_late]
    assert nslookup(md, "late", "newcomer")[0] == [ip_late]
    # tools resolve through the same server: ping goes through libc's resolver
    r = md("exec", "late", "ping", "-c1", "-W2", "web")
    assert r.returncode == 0 and f"PING web ({ip_web})" in r.stdout, r.stdout + r.stderr
    # a container in client's network namespace asks as client does
    r = md("run", "--rm", "--network", "container:client", "busybox", "nslookup", "www")
    assert f"Address: {ip_web}" in r.stdout, r.stdout + r.stderr
    # a reverse lookup of an address gives NAME.NETWORK, as Docker answers it
    r = md("exec", "client", "nslookup", ip_web)
    assert f"name = web.{net}" in r.stdout, r.stdout + r.stderr
    # an alias several containers share answers all their addresses (DNS round robin)
    md.out("run", "-d", "--name", "web2", "--network", net, "--network-alias", "www",
           "busybox", "sleep", "300")
    assert sorted(nslookup(md, "client", "www")[0]) == sorted([ip_web, ip_on(md, "web2", net)])


def test_removed_names_stop_resolving(user_net):
    md, net, _subnet = user_net
    md.out("run", "-d", "--name", "stay", "--network", net, "busybox", "sleep", "300")
    md.out("run", "-d", "--name", "goes", "--network", net, "--network-alias", "leaving",
           "busybox", "sleep", "300")
    assert nslookup(md, "stay", "goes")[0]
    md.out("stop", "-t", "0", "goes")
    for name in ("goes", "leaving"):
        found, out = nslookup(md, "stay", name)
        assert found == [] and f"can't find {name}" in out
    md.out("start", "goes")  # back, maybe at another address: known again
    assert nslookup(md, "stay", "leaving")[0] == [ip_on(md, "goes", net)]
    md.out("rm", "-f", "goes")
    assert nslookup(md, "stay", "goes")[0] == []
    r = md("exec", "stay", "ping", "-c1", "-W1", "goes")
    assert r.returncode != 0 and "bad address 'goes'" in r.stderr


def test_connect_alias_disconnect_and_a_container_on_two_networks(user_net):
    md, net, subnet = user_net
    other = "dn" + secrets.token_hex(3)
    other_subnet = free_test_subnet(exclude=[md.subnet, str(subnet)])
    md.out("network", "create", "--subnet", other_subnet, other)
    try:
        md.out("run", "-d", "--name", "db", "--network", net, "busybox", "sleep", "300")
        md.out("run", "-d", "--name", "app", "--network", other, "busybox", "sleep", "300")
        md.out("run", "-d", "--name", "cache", "--network", other, "busybox", "sleep", "300")
        assert nslookup(md, "app", "db")[0] == []  # not on db's network (yet)
        # network connect --alias: the new name is answered at once, to everyone on the
        # network and to the container itself
        md.out("network", "connect", "--alias", "backend", net, "app")
        ip_app = ip_on(md, "app", net)
        assert nslookup(md, "db", "backend")[0] == [ip_app]
        assert nslookup(md, "db", "app")[0] == [ip_app]
        assert nslookup(md, "app", "backend")[0] == [ip_app]
        # app is on both: its resolv.conf names both servers, eth0's network first, and
        # each server answers with app's view (the names of both networks)
        gw_other, gw_net = (str(next(ipaddress.ip_network(s).hosts())) for s in (other_subnet, subnet))
        resolv = md.out("exec", "app", "cat", "/etc/resolv.conf").splitlines()
        assert [l for l in resolv if l.startswith("nameserver")] == \
            [f"nameserver {gw_other}", f"nameserver {gw_net}"]
        ip_db, ip_cache = ip_on(md, "db", net), ip_on(md, "cache", other)
        for server in (gw_other, gw_net):
            assert nslookup(md, "app", "db", server)[0] == [ip_db]
            assert nslookup(md, "app", "cache", server)[0] == [ip_cache]
        # a peer on two shared networks: its address on the first; NAME.NETWORK picks
        assert nslookup(md, "app", f"app.{net}")[0] == [ip_app]
        assert nslookup(md, "app", f"app.{other}")[0] == [ip_on(md, "app", other)]
        assert nslookup(md, "app", f"cache.{net}")[0] == []  # cache is not on net
        # db does not see the other network's names
        assert nslookup(md, "db", "cache")[0] == []
        # disconnect: the names it had there go; its resolv.conf is back to one server
        md.out("network", "disconnect", net, "app")
        assert nslookup(md, "db", "backend")[0] == []
        assert nslookup(md, "db", "app")[0] == []
        resolv = md.out("exec", "app", "cat", "/etc/resolv.conf").splitlines()
        assert [l for l in resolv if l.startswith("nameserver")] == [f"nameserver {gw_other}"]
        assert nslookup(md, "app", "db")[0] == []
    finally:
        md("rm", "-f", "app", "cache")
        md("network", "rm", other)


def test_links_on_a_user_network_are_names_for_the_linking_container_only(user_net):
    md, net, _subnet = user_net
    md.out("run", "-d", "--name", "pg", "--network", net, "-e", "SECRET=x", "--expose", "5432",
           "busybox", "sleep", "300")
    md.out("run", "-d", "--name", "api", "--network", net, "--link", "pg:database",
           "busybox", "sleep", "300")
    md.out("run", "-d", "--name", "other", "--network", net, "busybox", "sleep", "300")
    assert nslookup(md, "api", "database")[0] == [ip_on(md, "pg", net)]
    assert nslookup(md, "other", "database")[0] == []
    # Docker's legacy link variables and hosts lines are for the default bridge only
    assert "DATABASE_" not in md.out("exec", "api", "env")
    assert "database" not in md.out("exec", "api", "cat", "/etc/hosts")
    endpoint = json.loads(md.out("inspect", "-f", f"{{{{json .NetworkSettings.Networks.{net}}}}}", "api"))
    assert endpoint["Links"] == ["pg:database"]


def test_the_default_bridge_keeps_dockers_ways(mdnet):
    md = mdnet
    r = md("run", "--rm", "--network-alias", "x", "busybox", "true")
    assert r.returncode != 0
    assert "network-scoped alias is supported only for containers in user defined networks" in r.stderr
    resolv = md.out("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    gateway = str(next(ipaddress.ip_network(md.subnet).hosts()))
    assert gateway not in resolv and "ndots:0" not in resolv
    assert not os.path.exists(os.path.join(md.root, "networks", "bridge", "dns.json"))


# --------------------------------------------------------------------------- forwarding
class FakeResolver:
    """A resolver on a 127.0.0.0/8 address of its own, port 53, UDP and TCP (dnslib's
    server): ``outside.test`` is 192.0.2.7, everything else NXDOMAIN. It notes what it
    was asked, and how."""

    def __init__(self):
        from dnslib import QTYPE, RCODE, RR, A
        from dnslib.server import BaseResolver, DNSLogger, DNSServer
        self.asked = []
        outer = self

        class Resolver(BaseResolver):
            def resolve(self, request, handler):
                outer.asked.append((str(request.q.qname), QTYPE[request.q.qtype], handler.protocol))
                reply = request.reply()
                if str(request.q.qname).lower() == "outside.test." and request.q.qtype == QTYPE.A:
                    reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=60))
                elif str(request.q.qname).lower() != "outside.test.":
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply

        self.address = f"127.53.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data")
        try:
            self.servers = [DNSServer(Resolver(), port=53, address=self.address, logger=quiet, tcp=tcp)
                            for tcp in (False, True)]
        except OSError as e:
            pytest.skip(f"cannot listen on {self.address}:53 for a fake resolver: {e}")
        for s in self.servers:
            s.start_thread()

    def stop(self):
        for s in self.servers:
            s.stop()
            s.server.server_close()


@pytest.fixture
def fake_resolver(tmp_path):
    fake = FakeResolver()
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"search corp.test\nnameserver {fake.address}\noptions timeout:2\n")
    fake.conf = str(conf)
    yield fake
    fake.stop()


def test_other_names_are_forwarded_to_the_hosts_resolvers(user_net, fake_resolver):
    md, net, subnet = user_net
    gateway = str(next(subnet.hosts()))
    # The server reads "the host's resolv.conf" from the environment it was started in:
    # that of the first container on the network.
    md.out("run", "-d", "--name", "fw", "--network", net, "busybox", "sleep", "300",
           env={"MINIDOCKER_RESOLV_CONF": fake_resolver.conf})
    resolv = md.out("exec", "fw", "cat", "/etc/resolv.conf").splitlines()
    # the host's search and options stay; its resolver (on the host's loopback, which
    # the container could not reach) is replaced by the network's server
    assert resolv == ["search corp.test", "options timeout:2", f"nameserver {gateway}", "options ndots:0"]
    assert nslookup(md, "fw", "outside.test")[0] == ["192.0.2.7"]
    assert ("outside.test.", "A", "udp") in fake_resolver.asked
    found, out = nslookup(md, "fw", "missing.test")
    assert found == [] and "can't find missing.test: NXDOMAIN" in out  # its answer, relayed
    # A container's own names never go upstream. (busybox's nslookup, unlike libc,
    # puts the first search domain after a name without a dot and asks nothing else:
    # "fw." is the name itself. ping, through libc, honours ndots:0 and asks "fw".)
    assert nslookup(md, "fw", "fw.")[0] == [ip_on(md, "fw", net)]
    r = md("exec", "fw", "ping", "-c1", "-W2", "fw")
    assert r.returncode == 0 and f"PING fw ({ip_on(md, 'fw', net)})" in r.stdout, r.stdout + r.stderr
    assert not [q for q in fake_resolver.asked if q[0] in ("fw.", "fw.corp.test.")]
    # over TCP too, and from the host itself (an address no container holds: the
    # server's own network's names, and forwarding)
    from dnslib import DNSRecord
    answer = DNSRecord.parse(DNSRecord.question("outside.test").send(gateway, 53, tcp=True, timeout=5))
    assert [str(rr.rdata) for rr in answer.rr] == ["192.0.2.7"]
    assert ("outside.test.", "A", "tcp") in fake_resolver.asked
    answer = DNSRecord.parse(DNSRecord.question("fw").send(gateway, 53, timeout=5))
    assert [str(rr.rdata) for rr in answer.rr] == [ip_on(md, "fw", net)]


def test_an_internal_network_forwards_nothing(mdnet, fake_resolver):
    md = mdnet
    name = "di" + secrets.token_hex(3)
    md.out("network", "create", "--internal", "--subnet", free_test_subnet(exclude=[md.subnet]), name)
    try:
        md.out("run", "-d", "--name", "inside", "--network", name, "busybox", "sleep", "300",
               env={"MINIDOCKER_RESOLV_CONF": fake_resolver.conf})
        assert nslookup(md, "inside", "inside.")[0] == [ip_on(md, "inside", name)]
        found, out = nslookup(md, "inside", "outside.test")
        assert found == [] and "SERVFAIL" in out
        assert fake_resolver.asked == []
    finally:
        md("rm", "-f", "inside")
        md("network", "rm", name)


# --------------------------------------------------------------------------- the server's life
def test_the_server_lives_with_the_networks_containers(user_net):
    md, net, _subnet = user_net
    assert dns_state(md, net) is None  # no container, no server
    a = md.out("run", "-d", "--name", "a", "--network", net, "busybox", "sleep", "300").strip()
    server = dns_state(md, net)
    assert server and alive(server["Pid"])
    # a daemon: not the child of the monitor that started it (which may stop first)
    assert parent_of(server["Pid"]) not in monitor_pids(a)
    md.out("run", "-d", "--name", "b", "--network", net, "busybox", "sleep", "300")
    assert dns_state(md, net) == server  # one server per network
    # killed: a monitor of the network's containers notices and starts another
    os.kill(server["Pid"], signal.SIGKILL)
    restarted = wait_until(lambda: (s := dns_state(md, net)) and s["Pid"] != server["Pid"]
                           and alive(s["Pid"]) and s)
    assert restarted, "the DNS server was not restarted"
    assert nslookup(md, "b", "a")[0] == [ip_on(md, "a", net)]
    # and the next container start notices too (a dead server, no matter who restarts it)
    os.kill(restarted["Pid"], signal.SIGKILL)
    md.out("run", "-d", "--name", "c", "--network", net, "busybox", "sleep", "300")
    assert nslookup(md, "c", "a")[0] == [ip_on(md, "a", net)]
    last = dns_state(md, net)
    # stops with the last container
    md.out("rm", "-f", "a", "b")
    assert alive(last["Pid"])
    md.out("rm", "-f", "c")
    assert dns_state(md, net) is None
    assert not alive(last["Pid"])


def test_everything_dies_at_once_and_network_rm_leaves_nothing(mdnet):
    md = mdnet
    name = "dk" + secrets.token_hex(3)
    net_id = md.out("network", "create", "--subnet", free_test_subnet(exclude=[md.subnet]), name).strip()
    cid = md.out("run", "-d", "--name", "doomed", "--network", name, "busybox", "sleep", "300").strip()
    try:
        server = dns_state(md, name)
        pid = int(md.out("inspect", "-f", "{{.State.Pid}}", "doomed"))
        for p in [*monitor_pids(cid), pid, server["Pid"]]:
            os.kill(p, signal.SIGKILL)  # monitor, container and server: nobody left to clean up
        assert wait_until(lambda: not alive(server["Pid"]))
        assert md("network", "rm", name).stdout == f"{name}\n"
        assert not os.path.exists(os.path.join(md.root, "networks", name))
        assert not os.path.exists(f"/sys/class/net/br-{net_id[:12]}")
    finally:
        md("rm", "-f", "doomed")
        md("network", "rm", name)
    assert not _serves(name, md.root)


def _serves(network, root):
    """A DNS server process of ``network`` in data root ``root``, if any is left."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if b"minidocker.network.dns_server" in cmd and network.encode() in cmd \
                and f"MINIDOCKER_ROOT={root}".encode() in env:
            return True
    return False


def test_a_server_whose_containers_all_died_stops_by_itself(user_net):
    md, net, _subnet = user_net
    cid = md.out("run", "-d", "--name", "lonely", "--network", net, "busybox", "sleep", "300").strip()
    server = dns_state(md, net)
    pid = int(md.out("inspect", "-f", "{{.State.Pid}}", "lonely"))
    for p in [*monitor_pids(cid), pid]:
        os.kill(p, signal.SIGKILL)  # no monitor left to stop the server, and no command runs
    assert wait_until(lambda: not alive(server["Pid"]), timeout=15), "the server outlived its network's containers"
    assert dns_state(md, net) is None
    log = open(os.path.join(md.root, "networks", net, "dns.log")).read()
    assert "stopping: no container is left on the network" in log


def test_system_check_reports_and_repairs_a_dns_server_out_of_line(user_net):
    md, net, _subnet = user_net
    cid = md.out("run", "-d", "--name", "orphan", "--network", net, "busybox", "sleep", "300").strip()
    server = dns_state(md, net)
    for p in monitor_pids(cid):
        os.kill(p, signal.SIGKILL)  # no monitor: nobody to restart the server
    os.kill(server["Pid"], signal.SIGKILL)
    assert wait_until(lambda: not alive(server["Pid"]))
    r = md("system", "check")
    assert r.returncode == 1
    assert f"network {net}: has running containers but no DNS server\n" in r.stdout, r.stdout
    r = md("system", "check", "--repair")
    assert f"network {net}: has running containers but no DNS server\n" in r.stdout, r.stdout
    assert md("system", "check").returncode == 0
    assert dns_state(md, net) is None or alive(dns_state(md, net)["Pid"])
    # a dns.json whose server is gone, on a network with nobody on it
    md("rm", "-f", "orphan")
    path = os.path.join(md.root, "networks", net, "dns.json")
    with open(path, "w") as f:
        json.dump({**server, "Pid": 2**22 + 1}, f)
    r = md("system", "check", "--repair")
    assert f"network {net}: keeps the dns.json of a DNS server that is gone (pid {2**22 + 1})\n" in r.stdout
    assert f"brought the DNS server of network {net} in line with its containers\n" in r.stdout
    assert not os.path.exists(path)
