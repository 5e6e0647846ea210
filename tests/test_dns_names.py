"""The DNS server's rules without a server: which names a query sees (network/dns_names.py),
what a container's /etc/resolv.conf says (engine/etc_files.py), and a server that cannot
listen saying why. Leases are written by hand into a data root; "alive" is this test
process (its pid and start time), "dead" a pid that cannot exist."""

from __future__ import annotations

import json
import os

import pytest

from minidocker import paths
from minidocker.kernel import processes
from minidocker.network import dns_names

ME = {"Pid": os.getpid(), "PidStart": processes.start_time(os.getpid())}
DEAD = {"Pid": 2**22 + 1, "PidStart": 1}


def _network(name, subnet, internal=False):
    prefix = subnet.rsplit(".", 1)[0]
    rec = {"Name": name, "Id": name * 4, "Driver": "bridge", "Internal": internal,
           "IPAM": {"Config": [{"Subnet": f"{subnet}/24", "Gateway": f"{prefix}.1"}]},
           "Options": {"com.docker.network.bridge.name": f"br-{name}"}}
    paths.write_json(os.path.join(paths.data_root(), "networks", name, "network.json"), rec)


def _leases(name, leases):
    paths.write_json(os.path.join(paths.data_root(), "networks", name, "leases.json"),
                     {"last": None, "leases": leases})


def _lease(cid, name, iface="eth0", aliases=(), links=(), alive=True):
    return {"Container": cid * 8, "Name": name, "Interface": iface, "Aliases": list(aliases),
            "Links": list(links), **(ME if alive else DEAD)}


@pytest.fixture
def two_networks(data_root):
    """front (10.1.0.0/24): web (alias www), api (on back too, joined second), gone (dead);
    back (10.2.0.0/24): db, api (link db:database), worker (alias www)."""
    _network("front", "10.1.0.0")
    _network("back", "10.2.0.0", internal=True)
    _leases("front", {"10.1.0.2": _lease("aaaaaaaa", "web", aliases=["www"]),
                      "10.1.0.3": _lease("bbbbbbbb", "api", iface="eth1"),
                      "10.1.0.4": _lease("cccccccc", "gone", alive=False)})
    _leases("back", {"10.2.0.2": _lease("dddddddd", "db"),
                     "10.2.0.3": _lease("bbbbbbbb", "api", links=["db:database", "/web:/api/w"]),
                     "10.2.0.4": _lease("eeeeeeee", "worker", aliases=["WWW"])})
    return dns_names.Directory()


def test_a_container_sees_the_names_of_its_networks_in_the_order_it_joined_them(two_networks):
    d = two_networks
    api = dns_names.view_for(d, "front", "10.1.0.3")  # asked on front; api's eth0 is on back
    assert [n for n, _rec, _ls in api.networks] == ["back", "front"]
    assert dns_names.lookup(api, "db") == ["10.2.0.2"]
    assert dns_names.lookup(api, "web.") == ["10.1.0.2"]
    assert dns_names.lookup(api, "api") == ["10.2.0.3"]  # itself, on its first network
    assert dns_names.lookup(api, "api.front") == ["10.1.0.3"]  # NAME.NETWORK
    assert dns_names.lookup(api, "API.Front.") == ["10.1.0.3"]  # DNS ignores case
    assert dns_names.lookup(api, "bbbbbbbbbbbb") == ["10.2.0.3"]  # the short id
    assert dns_names.lookup(api, "bbbbbbbbbbbbb") is None  # ... and only 12 digits
    # a name on two networks: the first network that has it answers, with all its holders
    assert dns_names.lookup(api, "www") == ["10.2.0.4"]
    assert dns_names.lookup(api, "www.front") == ["10.1.0.2"]
    # links are api's own names
    assert dns_names.lookup(api, "database") == ["10.2.0.2"]
    assert dns_names.lookup(api, "w") == ["10.1.0.2"]
    # a dead container's lease answers nothing; unknown names are not ours
    assert dns_names.lookup(api, "gone") is None
    assert dns_names.lookup(api, "example.com") is None
    assert dns_names.reverse(api, "2.0.1.10.in-addr.arpa.") == "web.front"
    assert dns_names.reverse(api, "9.0.1.10.in-addr.arpa") is None
    assert api.may_forward  # front is not internal


def test_others_see_only_their_own_networks_and_no_links(two_networks):
    d = two_networks
    web = dns_names.view_for(d, "front", "10.1.0.2")
    assert [n for n, _rec, _ls in web.networks] == ["front"]
    assert dns_names.lookup(web, "db") is None
    assert dns_names.lookup(web, "database") is None
    assert dns_names.lookup(web, "www") == ["10.1.0.2"]
    db = dns_names.view_for(d, "back", "10.2.0.2")
    assert dns_names.lookup(db, "www") == ["10.2.0.4"]
    assert dns_names.lookup(db, "web") is None
    assert not db.may_forward  # back is --internal, and db is on nothing else
    # an address no live container holds (the host, a dead one): the server's network
    host = dns_names.view_for(d, "back", "10.2.0.1")
    assert host.container is None and dns_names.lookup(host, "db") == ["10.2.0.2"]
    assert dns_names.lookup(dns_names.view_for(d, "front", "10.1.0.4"), "web") == ["10.1.0.2"]


def test_a_shared_alias_answers_every_holder_and_changes_are_seen(two_networks):
    d = two_networks
    worker = dns_names.view_for(d, "back", "10.2.0.4")
    assert dns_names.lookup(worker, "www") == ["10.2.0.4"]
    leases = json.load(open(os.path.join(paths.data_root(), "networks", "back", "leases.json")))["leases"]
    leases["10.2.0.5"] = _lease("ffffffff", "web2", aliases=["www"])
    _leases("back", leases)
    worker = dns_names.view_for(d, "back", "10.2.0.4")  # the same Directory: it re-reads
    assert dns_names.lookup(worker, "www") == ["10.2.0.4", "10.2.0.5"]
    del leases["10.2.0.4"]
    _leases("back", leases)
    assert dns_names.view_for(d, "back", "10.2.0.4").container is None


def test_link_specs():
    assert dns_names.parse_link("db:database") == ("database", "db")
    assert dns_names.parse_link("db") == ("db", "db")
    assert dns_names.parse_link("/db:/api/Database") == ("database", "db")


def test_resolv_conf_of_a_container(tmp_path, monkeypatch):
    from minidocker.engine.etc_files import resolv_conf_lines
    conf = tmp_path / "resolv.conf"
    monkeypatch.setenv("MINIDOCKER_RESOLV_CONF", str(conf))
    conf.write_text("# made by hand\nnameserver 127.0.0.53\nnameserver 10.0.0.53\nsearch corp.test\n")
    # the default bridge: the host's, less its loopback resolvers
    assert resolv_conf_lines() == ["# made by hand", "nameserver 10.0.0.53", "search corp.test"]
    # a user-defined network: its servers instead of the host's, and ndots:0
    assert resolv_conf_lines(["10.1.0.1", "10.2.0.1"]) == [
        "# made by hand", "search corp.test", "nameserver 10.1.0.1", "nameserver 10.2.0.1",
        "options ndots:0"]
    assert len([l for l in resolv_conf_lines([f"10.{i}.0.1" for i in range(5)])
                if l.startswith("nameserver")]) == 3  # libc reads three
    conf.write_text("nameserver ::1\noptions ndots:2\n")
    assert resolv_conf_lines() == ["options ndots:2", "nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    assert resolv_conf_lines(["10.1.0.1"]) == ["options ndots:2", "nameserver 10.1.0.1"]


@pytest.mark.root
def test_a_server_that_cannot_listen_says_why(data_root):
    from conftest import IS_ROOT
    if not IS_ROOT:
        pytest.skip("needs root (port 53)")
    from minidocker.errors import MinidockerError
    from minidocker.network import dns
    _network("nowhere", "192.0.2.0")  # TEST-NET-1: its gateway is no address of this host
    rec = paths.read_json(os.path.join(data_root, "networks", "nowhere", "network.json"))
    with paths.locked("networks"), pytest.raises(MinidockerError) as e:
        dns.ensure_running(rec)
    assert str(e.value) == ("cannot start the DNS server of network nowhere: cannot listen on "
                            "192.0.2.1:53: Cannot assign requested address")
    assert dns.read_state("nowhere") is None
