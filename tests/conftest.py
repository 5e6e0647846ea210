"""Shared fixtures, and the suite-wide leak check.

Every test that touches the kernel runs as root; elsewhere it skips with the reason.
After the whole session, :func:`pytest_sessionfinish` compares the machine with how it
was at the start and fails the run if a test left a mount, a network link, a cgroup,
a firewall rule or a process behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(REPO, "tools")
sys.path.insert(0, os.path.join(REPO, "tests"))

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")


# --------------------------------------------------------------------------- network guard
#: Tests talk only to 127.0.0.0/8 and to containers on minidocker's own bridge. An
#: image reference without a registry host means Docker Hub, so a test that forgot to
#: bootstrap, tag or ``--pull never`` would go out to the internet. Every HTTPS client
#: the tests start (minidocker's, podman's, skopeo's) honours ``HTTPS_PROXY``: point it
#: at a closed loopback port, and such a request fails at once, on this machine.
#: Registries on loopback (the embedded one, docker-registry) bypass it via ``NO_PROXY``.
CLOSED_PROXY = "http://127.0.0.1:9"
for _name in ("HTTPS_PROXY", "https_proxy"):
    os.environ[_name] = CLOSED_PROXY
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = "localhost,127.0.0.1,127.0.0.0/8,::1"
#: DNS: the server of a user-defined network forwards the names it does not know to the
#: host's resolvers, which are off this machine. In tests the "host's resolv.conf" is a
#: file without any (tests/resolv.conf.offline): such a query gets SERVFAIL at once.
os.environ["MINIDOCKER_RESOLV_CONF"] = os.path.join(REPO, "tests", "resolv.conf.offline")


# --------------------------------------------------------------------------- leak check
def _mounts():
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _links():
    return set(os.listdir("/sys/class/net"))


def _cgroups():
    """Every cgroup below a ``minidocker`` group: at each hierarchy's root, and below
    this process's own group (where runc puts a *relative* cgroupsPath)."""
    found = set()
    base = "/sys/fs/cgroup"
    parents = [base] + [os.path.join(base, d) for d in os.listdir(base)]
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            name = controllers.replace("name=", "") or "unified"
            parents += [os.path.join(base, name, path.lstrip("/")), os.path.join(base, path.lstrip("/"))]
    for parent in parents:
        top = os.path.join(parent, "minidocker")
        if os.path.isdir(top):
            for dirpath, dirnames, _ in os.walk(top):
                found.update(os.path.join(dirpath, d) for d in dirnames)
    return found


def _firewall():
    rules = set()
    if shutil.which("iptables-save"):
        for table in ("filter", "nat"):
            out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
            rules.update(f"{table}: {line}" for line in out.splitlines()
                         if "minidocker" in line.lower() or "MINIDOCKER" in line)
    return rules


def _processes(marker: str | None):
    """Processes that belong to this test run: their command line, environment, working
    directory or root directory mentions the run's temporary base directory (every test
    data root and rootfs lives under it), or they run a minidocker command."""
    procs = {}
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            if not cmd:
                continue  # kernel thread or zombie
            seen = [cmd]
            if marker:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    seen.append(f.read().decode(errors="replace"))
                seen += [os.readlink(f"/proc/{pid}/cwd"), os.readlink(f"/proc/{pid}/root")]
        except OSError:
            continue
        if marker and any(marker in text for text in seen):
            procs[int(pid)] = cmd
    return procs


def _snapshot(marker=None):
    return {"mounts": _mounts(), "links": _links(), "cgroups": _cgroups(),
            "firewall rules": _firewall(), "processes": set(_processes(marker).items())}


#: Two test runs at once on one machine (developers working in several checkouts) see
#: each other's links, cgroups and rules as leaks: such runs set this to ``1``. CI and
#: ``scripts/test.sh`` never do, so every landed change passes the check.
SKIP_LEAK_CHECK = os.environ.get("MINIDOCKER_TEST_CONCURRENT") == "1"


def pytest_sessionstart(session):
    session.config._leak_before = _snapshot() if IS_ROOT and not SKIP_LEAK_CHECK else None


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_leak_before", None)
    if before is None:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    marker = str(factory.getbasetemp()) if factory is not None else None
    after = _snapshot(marker)
    leaks = {kind: sorted(map(str, after[kind] - before[kind])) for kind in after}
    leaks = {k: v for k, v in leaks.items() if v}
    if leaks:
        lines = ["", "LEAK CHECK FAILED: the tests left these behind:"]
        for kind, items in leaks.items():
            lines += [f"  {kind}:"] + [f"    {item}" for item in items[:20]]
        print("\n".join(lines), file=sys.stderr)
        session.exitstatus = 1


# --------------------------------------------------------------------------- markers
KERNEL_TESTS = os.path.join(REPO, "tests", "vm", "kernel-tests.txt")


def _kernel_selection() -> list[str]:
    """Node ids / files listed in tests/vm/kernel-tests.txt (comments with #)."""
    try:
        with open(KERNEL_TESTS) as f:
            return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]
    except FileNotFoundError:
        return []


def pytest_collection_modifyitems(config, items):
    """Mark the tests that depend on the kernel's cgroup and namespace behaviour
    (listed in tests/vm/kernel-tests.txt) with ``kernel``: the same tests run on the host
    (cgroup v1 here) and inside the cgroup-v2 VM (``tests/vm/run``)."""
    selection = _kernel_selection()
    for item in items:
        node = item.nodeid
        if any(node == s or node.startswith(s.rstrip("/") + "::") or
               node.startswith(s + "[") or
               (s.endswith("/") and node.startswith(s)) for s in selection):
            item.add_marker(pytest.mark.kernel)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A read-only-by-convention busybox root filesystem shared by the session."""
    from minidocker.image.busybox import make_busybox_rootfs
    dest = tmp_path_factory.mktemp("busybox-rootfs")
    try:
        make_busybox_rootfs(str(dest))
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return str(dest)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A fresh, private minidocker data root for one test (``$MINIDOCKER_ROOT``)."""
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("MINIDOCKER_ROOT", str(root))
    return str(root)


def run_tool(name, *args, input=None, user=None, timeout=30, env=None):
    """Run ``tools/<name> ARGS`` and return the CompletedProcess (text mode)."""
    cmd = [sys.executable, os.path.join(TOOLS, name), *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                          user=user, env=env)
