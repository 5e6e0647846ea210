"""Helpers for the networking tests: a private bridge and subnet per test, processes in
network namespaces of their own, and a teardown that leaves nothing on the host.

Traffic in these tests goes only to 127.0.0.1 and to namespaces the test made itself.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import time

import pytest


def free_test_subnet(prefix: int = 24, exclude=()) -> str:
    """A 10.2xx.y.0/24 that no host interface routes (checked, not assumed), and none of
    ``exclude``."""
    from minidocker.network.records import host_ipv4_networks
    used = [net for _dev, net in host_ipv4_networks()] + [ipaddress.ip_network(e) for e in exclude]
    for second in range(200, 250):
        for third in range(0, 256, 7):
            candidate = ipaddress.ip_network(f"10.{second}.{third}.0/{prefix}")
            if not any(candidate.overlaps(u) for u in used):
                return str(candidate)
    raise RuntimeError("no free 10.2xx.0.0/24 subnet on this host")


def teardown_networks(root: str, bridges=()) -> None:
    """Release everything a test's data root holds on the host: leases of dead processes,
    user-defined bridges, the default bridge and our iptables chains."""
    from minidocker.network import cleanup_stale, records
    saved = os.environ.get("MINIDOCKER_ROOT")
    os.environ["MINIDOCKER_ROOT"] = root
    try:
        cleanup_stale()
        names = list(bridges)
        for rec in records.list_records():
            names.append(records.bridge_name(rec))
        remove_bridges(sorted(set(names)))
    finally:
        if saved is None:
            os.environ.pop("MINIDOCKER_ROOT", None)
        else:
            os.environ["MINIDOCKER_ROOT"] = saved


def remove_bridges(bridge_names) -> None:
    """Tear down the bridges named, with their firewall rules (and our chains once
    nothing uses them), so that a failed test leaves nothing on the host."""
    from minidocker.network import bridge, firewall
    with firewall.host_lock():
        for br in bridge_names:
            bridge.take_down(br)


@pytest.fixture
def private_bridge(data_root, monkeypatch):
    """Make the default network use a bridge and subnet of this test's own; remove them
    (and anything left on them) at the end."""
    name = "mdt" + secrets.token_hex(4)  # 11 characters: within IFNAMSIZ
    subnet = free_test_subnet()
    monkeypatch.setenv("MINIDOCKER_BRIDGE", name)
    monkeypatch.setenv("MINIDOCKER_BRIDGE_SUBNET", subnet)
    yield {"bridge": name, "subnet": subnet, "gateway": str(next(ipaddress.ip_network(subnet).hosts()))}
    teardown_networks(data_root, [name])


class NetnsProcess:
    """A ``sleep`` in a new network namespace: stands in for a container's PID 1."""

    def __init__(self):
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "300"])
        deadline = time.monotonic() + 5
        # unshare execs sleep in the same process: wait until it is in its own namespace
        while time.monotonic() < deadline:
            try:
                if os.stat(f"/proc/{self.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, *cmd, timeout=10) -> subprocess.CompletedProcess:
        """Run a command inside this namespace (network only: the host's files)."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", *cmd], capture_output=True,
                              text=True, timeout=timeout)

    def spawn(self, *cmd) -> subprocess.Popen:
        return subprocess.Popen(["nsenter", "-t", str(self.pid), "-n", *cmd])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def netns():
    """A factory of :class:`NetnsProcess`; all are killed at the end of the test."""
    made = []

    def make():
        p = NetnsProcess()
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def fake_state(name: str = None, **host_config) -> dict:
    """A container state with just what the network hooks read (Docker's field names)."""
    cid = secrets.token_hex(32)
    exposed = host_config.pop("ExposedPorts", {})
    return {"Id": cid, "Name": name or "c" + cid[:6], "Config": {"ExposedPorts": exposed, "Env": []},
            "HostConfig": {"NetworkMode": "bridge", **host_config}}


def wait_for_port(host: str, port: int, timeout: float = 5.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def http_get(url: str, timeout: float = 5.0) -> str:
    import urllib.request
    # no proxy from the environment: this traffic must stay on this machine
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return r.read().decode()


@pytest.fixture(scope="module")
def mdnet(tmp_path_factory):
    """``minidocker`` with a busybox image in a data root of its own, whose default
    bridge is private to this module (its own name and subnet). At the end every
    container, user network, volume mount and the bridge are gone."""
    from conftest import IS_ROOT
    from helpers_engine import Minidocker
    if not IS_ROOT:
        pytest.skip("needs root (namespaces, mounts, veth, iptables)")
    root = str(tmp_path_factory.mktemp("mdnet"))
    m = Minidocker(root)
    bridge = "mdt" + secrets.token_hex(4)
    m.env.update(MINIDOCKER_BRIDGE=bridge, MINIDOCKER_BRIDGE_SUBNET=free_test_subnet())
    m.bridge, m.subnet = bridge, m.env["MINIDOCKER_BRIDGE_SUBNET"]
    r = m("bootstrap", "busybox", timeout=120)
    if r.returncode != 0:
        pytest.skip(f"cannot bootstrap busybox: {r.stderr.strip()}")
    saved = {k: os.environ.get(k) for k in ("MINIDOCKER_BRIDGE", "MINIDOCKER_BRIDGE_SUBNET")}
    try:
        yield m
    finally:
        m.cleanup()
        os.environ.update(MINIDOCKER_BRIDGE=bridge, MINIDOCKER_BRIDGE_SUBNET=m.subnet)
        teardown_networks(root, [bridge])
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
