"""Networks, volumes, events, info, version and df through the Engine API, driven by the
unchanged docker CLI 20.10, checked against what minidocker's own CLI reads from the
same data root."""

from __future__ import annotations

import json
import subprocess
import time

from helpers_api import DOCKER, api  # noqa: F401  (fixture)


def test_network_create_ls_inspect_connect_disconnect_rm(api):
    net_id = api.out("network", "create", "--subnet", "10.211.0.0/24", "--gateway", "10.211.0.1",
                     "--label", "team=lab", "labnet").strip()
    try:
        assert len(net_id) == 64
        ls = api.out("network", "ls", "--format", "{{.Name}} {{.Driver}}").splitlines()
        assert "labnet bridge" in ls and "bridge bridge" in ls and "none null" in ls
        assert api.out("network", "ls", "-q", "--filter", "label=team=lab").split() == [net_id[:12]]
        doc = json.loads(api.out("network", "inspect", "labnet"))[0]
        assert doc["Id"] == net_id and doc["IPAM"]["Config"] == [
            {"Gateway": "10.211.0.1", "Subnet": "10.211.0.0/24"}]
        assert doc["Labels"] == {"team": "lab"}
        r = api.docker("network", "create", "labnet")
        assert r.returncode == 1 and "network with name labnet already exists" in r.stderr
        cid = api.minidocker("run", "-d", "--name", "netpeer", "busybox", "sleep", "300").stdout.strip()
        api.out("network", "connect", "--alias", "peer-alias", "--ip", "10.211.0.50", "labnet", "netpeer")
        members = json.loads(api.out("network", "inspect", "-f", "{{json .Containers}}", "labnet"))
        assert members[cid]["Name"] == "netpeer" and members[cid]["IPv4Address"] == "10.211.0.50/24"
        ip = api.minidocker("exec", "netpeer", "ip", "-4", "-o", "addr").stdout
        assert "10.211.0.50/24" in ip
        r = api.docker("network", "rm", "labnet")
        assert r.returncode == 1 and "has active endpoints" in r.stderr
        api.out("network", "disconnect", "labnet", "netpeer")
        assert "10.211.0.50" not in api.minidocker("exec", "netpeer", "ip", "-4", "-o", "addr").stdout
        r = api.docker("network", "disconnect", "labnet", "netpeer")
        assert r.returncode == 1 and "is not connected" in r.stderr
        api.minidocker("rm", "-f", "netpeer")
        events = api.out("events", "--since", "1m", "--until", str(int(time.time()) + 1),
                         "--filter", "network=labnet", "--format", "{{.Action}}").split()
        assert events[:3] == ["create", "connect", "disconnect"]
    finally:
        api.docker("network", "rm", "labnet")
    r = api.docker("network", "inspect", "labnet")
    assert r.returncode == 1 and r.stderr.strip() == "Error: No such network: labnet"
    r = api.docker("network", "rm", "bridge")
    assert r.returncode == 1 and "bridge is a pre-defined network and cannot be removed" in r.stderr


def test_network_prune(api):
    api.out("network", "create", "lab-unused")
    out = api.out("network", "prune", "-f")
    assert "Deleted Networks:\nlab-unused" in out
    assert "lab-unused" not in api.out("network", "ls")


def test_volume_create_ls_inspect_rm_prune(api):
    assert api.out("volume", "create", "--label", "kind=test", "labvol").strip() == "labvol"
    ls = api.out("volume", "ls", "--format", "{{.Driver}} {{.Name}}").splitlines()
    assert "local labvol" in ls
    assert api.out("volume", "ls", "-q", "--filter", "label=kind=test").split() == ["labvol"]
    doc = json.loads(api.out("volume", "inspect", "labvol"))[0]
    ours = json.loads(api.minidocker("volume", "inspect", "labvol").stdout)[0]
    assert doc["Mountpoint"] == ours["Mountpoint"] and doc["Labels"] == {"kind": "test"}
    api.minidocker("run", "--name", "voluser", "-v", "labvol:/data", "busybox",
                   "sh", "-c", "echo kept > /data/f")
    r = api.docker("volume", "rm", "labvol")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    api.minidocker("rm", "voluser")
    assert api.out("volume", "ls", "-q", "--filter", "dangling=true").split() == ["labvol"]
    out = api.out("volume", "prune", "-f")   # API 1.41: named volumes too
    assert "labvol" in out and out.strip().endswith("Total reclaimed space: 5B")
    assert api.out("volume", "ls", "-q") == ""
    api.out("volume", "create", "gone")
    api.out("volume", "rm", "gone")
    r = api.docker("volume", "inspect", "gone")
    assert r.returncode == 1 and r.stderr.strip() == "Error: No such volume: gone"
    events = api.out("events", "--since", "1m", "--until", str(int(time.time()) + 1),
                     "--filter", "type=volume", "--filter", "volume=labvol",
                     "--format", "{{.Action}}").split()
    assert events == ["create", "mount", "destroy"]


def test_events_stream_follows_until_the_client_goes(api):
    """``docker events`` keeps the stream open and prints what happens as it happens;
    filters narrow it; --since/--until read the past."""
    proc = subprocess.Popen([DOCKER, "events", "--filter", "type=container", "--filter",
                             "event=start", "--filter", "event=die", "--format",
                             "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}"],
                            env=api.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        api.minidocker("run", "--rm", "--name", "evrun", "busybox", "sh", "-c", "exit 4",
                       check=False)
        got = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
    finally:
        proc.terminate()
        proc.wait(10)
    assert got == ["start evrun <no value>", "die evrun 4"]   # Go's text for a missing key
    past = api.out("events", "--since", "1m", "--until", str(int(time.time()) + 1),
                   "--filter", "container=evrun")
    assert [l.split()[2] for l in past.splitlines()] == ["create", "attach", "start", "die", "destroy"]
    status, _, body = api.request("GET", '/events?filters={"type":["nonsense"]}')
    assert status == 400 and b"Invalid filter" in body
    status, _, body = api.request("GET", "/events?since=yesterday")
    assert status == 400


def test_info_version_and_df(api):
    info = json.loads(api.out("info", "--format", "{{json .}}"))
    assert info["Driver"] == "overlay2" and info["CgroupDriver"] == "cgroupfs"
    assert info["CgroupVersion"] in ("1", "2") and info["DockerRootDir"] == api.root
    assert info["Images"] >= 1 and info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["DefaultRuntime"] == "minidocker" and "minidocker" in info["Runtimes"]
    text = api.out("info")
    assert "Storage Driver: overlay2" in text and f"Docker Root Dir: {api.root}" in text
    cid = api.minidocker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    try:
        info = json.loads(api.out("info", "--format", "{{json .}}"))
        assert info["ContainersRunning"] == 1 and info["Containers"] == 1
        df = api.out("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}").splitlines()
        assert "Containers 1 1" in df and any(l.startswith("Images ") and l.endswith(" 1") for l in df)
    finally:
        api.minidocker("rm", "-f", cid)
    version = json.loads(api.out("version", "--format", "{{json .Server}}"))
    assert version["ApiVersion"] == "1.41"


def test_event_streams_end_when_their_clients_go(api):
    """A follower whose client has gone must not keep its thread: the stream notices
    (within about a second of quiet) and ends."""
    import os
    import socket

    def threads():
        return len(os.listdir(f"/proc/{api.proc.pid}/task"))
    before = threads()
    socks = []
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX)
        s.connect(api.sock)
        s.sendall(b"GET /v1.41/events HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(0.5)
    assert threads() >= before + 5
    for s in socks:
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
        s.close()
    deadline = time.monotonic() + 10
    while threads() > before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert threads() <= before
