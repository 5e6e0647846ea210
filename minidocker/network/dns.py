"""Names by DNS on user-defined networks: one small DNS server per network, and no daemon.

On a user-defined network, ``wget http://web/`` finds the container named ``web`` (or
one connected with the alias ``web``), also one that joined after the asking container
started. Docker answers these names from a DNS server inside dockerd (127.0.0.11 in
every container); podman starts ``aardvark-dns``. minidocker has no daemon, so each
user-defined network gets a server process of its own while it has containers: the
first container to join starts it, the last one to leave stops it.

Where the server listens: on the network's **gateway address**, port 53 -- the
address of the network's bridge on the host, which every container of the network can
reach through its own ``ethN`` (podman's choice). The container's ``/etc/resolv.conf``
says ``nameserver 10.89.0.1``. Why not Docker's 127.0.0.11? That address is on each
container's *own* loopback, so dockerd opens a socket inside every container's network
namespace (and redirects port 53 there with iptables): one resolver per container,
which a per-network process cannot be. The gateway needs no iptables rule and no socket
in any container; it is there as long as the bridge is.

A container on several user-defined networks gets one ``nameserver`` line per network
(eth0's first, at most three). Each server answers with the *asking* container's view
(:mod:`.dns_names`: it recognises the container by the source address of the query):
the names of every network that container is on, its links, its own aliases. So the
first server alone answers everything, and the others are there if it is gone.

Who starts, stops and notices (all under ``paths.locked("networks")``, the lock the
address leases are changed under):

* :func:`ensure_running` -- when a container joins a user-defined network (at start or
  ``network connect``), after its lease is made: start the server unless a live one is
  recorded. A server that was killed is so restarted by the next container to join.
* :func:`stop` -- when the last live lease of the network is released (the last
  container stopped, was removed or disconnected; ``network rm``).
* :func:`keep_running` -- in every bridged container's monitor, a thread that looks
  every two seconds: a server of one of its networks that died (``kill -9``, a crash)
  is started again at once, by whichever monitor sees it first.
* :func:`reconcile_network` -- at the start of a command (:func:`.attach.cleanup_stale`):
  the same, when no monitor is left to do it; a live server of a network with no
  container is stopped, a dead one's state file removed.
* and the server itself, every two seconds (:func:`.dns_server.watch`): it exits when
  its network has no live container (every monitor died), when its network is gone, or
  when the state file names another server.

State, in the network's directory of the data root (plain JSON, like the leases)::

    $ROOT/networks/<name>/dns.json   {"Pid": 4242, "PidStart": 123456, "Address":
                                      "10.89.0.1", "Port": 53, "Network": "appnet", ...}
    $ROOT/networks/<name>/dns.log    what the server said when it started and stopped

``Pid`` and ``PidStart`` name the process (see :mod:`minidocker.kernel.processes`): a
server that died, or a pid given since to another process, reads as not running.

The server is its own process (``python -m minidocker.network.dns_server NAME``), made
a daemon by a double fork, so that it outlives the container that started it. This
module imports nothing heavy: dnslib is loaded by the server only.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time

from .. import paths
from ..errors import MinidockerError
from ..kernel import capabilities, processes
from . import ipam, records

STATE_FILE = "dns.json"
LOG_FILE = "dns.log"
PORT = 53

#: How long a new server may take to listen (a Python start, dnslib's import, bind).
START_TIMEOUT = 10.0
#: How long a server has to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 2.0
#: How often the servers' keepers (:func:`keep_running`) look.
KEEP_INTERVAL = 2.0


def state_path(network_name: str) -> str:
    return os.path.join(records.network_dir(network_name), STATE_FILE)


def log_path(network_name: str) -> str:
    return os.path.join(records.network_dir(network_name), LOG_FILE)


def read_state(network_name: str) -> dict | None:
    """The network's ``dns.json``, None if it has none."""
    try:
        return paths.read_json(state_path(network_name))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def is_running(state: dict | None) -> bool:
    """Is the server that ``state`` records alive, and still the same process?"""
    return bool(state) and processes.is_alive(state.get("Pid") or 0, state.get("PidStart"))


def uses_dns(rec: dict) -> bool:
    """Docker's rule: names by DNS on user-defined networks only; the default bridge
    keeps ``/etc/hosts`` and ``--link``."""
    return rec.get("Driver") == "bridge" and rec["Name"] not in records.PREDEFINED


def dns_servers(networks) -> list[str]:
    """The ``nameserver`` lines a container on ``networks`` (names, eth0's first) gets:
    the gateway of each user-defined one. None at all: the host's resolvers."""
    servers = []
    for name in networks:
        try:
            rec = records.get(name)
        except MinidockerError:
            continue  # a network removed meanwhile (``network disconnect -f``)
        if uses_dns(rec) and records.gateway_of(rec) not in servers:
            servers.append(records.gateway_of(rec))
    return servers


def has_live_members(network_name: str) -> bool:
    return any(ipam.lease_is_alive(l) for l in ipam.leases_of(network_name).values())


# ------------------------------------------------------------------------ start
def ensure_running(rec: dict) -> dict:
    """Start the DNS server of network ``rec`` unless a live one is recorded; returns
    its state. Call with ``paths.locked("networks")`` held and the bridge up (the
    server listens on the bridge's address)."""
    state = read_state(rec["Name"])
    if is_running(state):
        return state
    return _start(rec)


def _start(rec: dict) -> dict:
    """Spawn the server and wait until it listens (it writes ``dns.json`` itself, then
    says ``ok`` on its stdout); a server that cannot listen says why, and that is the
    error raised here."""
    name = rec["Name"]
    os.makedirs(records.network_dir(name), exist_ok=True)
    env = dict(os.environ, MINIDOCKER_ROOT=paths.data_root())
    argv = [sys.executable, "-m", "minidocker.network.dns_server", name]
    with open(log_path(name), "w") as log, capabilities.not_a_child_subreaper():
        # start_new_session: no terminal, and no SIGINT from a ^C meant for `run`.
        # cwd="/": the server must not keep a directory of the caller in use.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=log, env=env, cwd="/", start_new_session=True)
        line = ""
        try:
            line = _read_line(proc.stdout, START_TIMEOUT)
        finally:
            proc.stdout.close()
            if proc.poll() is None and not line:
                proc.kill()
            proc.wait()  # the middle process of the double fork: gone once it has forked
    state = read_state(name)
    if line.startswith("ok") and is_running(state):
        return state
    reason = line.removeprefix("error:").strip() or _last_line(log_path(name)) or "it did not start"
    raise MinidockerError(f"cannot start the DNS server of network {name}: {reason}")


def _read_line(stream, timeout: float) -> str:
    """One line from a pipe, or what came before ``timeout`` seconds (or the end)."""
    deadline = time.monotonic() + timeout
    data = b""
    fd = stream.fileno()
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------ stop
def stop(network_name: str) -> None:
    """Stop the network's server (SIGTERM, then SIGKILL) and remove its state file.
    Nothing to do when none runs. Call with ``paths.locked("networks")`` held."""
    state = read_state(network_name)
    if is_running(state):
        _terminate(state["Pid"], state["PidStart"])
    try:
        os.unlink(state_path(network_name))
    except (FileNotFoundError, NotADirectoryError):
        pass


def _terminate(pid: int, started: int) -> None:
    """SIGTERM, and SIGKILL after :data:`STOP_TIMEOUT`; returns once it is gone, so
    that its port is free for a new server and its bridge can go."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not processes.is_alive(pid, started):
                return
            time.sleep(0.01)


def stop_if_unused(network_name: str) -> None:
    """After a lease was released: the last live container gone, the server goes.
    Call with ``paths.locked("networks")`` held."""
    if not has_live_members(network_name):
        stop(network_name)


# ------------------------------------------------------------------------ notice
def needs_reconcile(rec: dict) -> bool:
    """Cheap, without the lock: is :func:`reconcile_network` going to change anything?"""
    if not uses_dns(rec):
        return False
    state = read_state(rec["Name"])
    running = is_running(state)
    if state is None:
        return has_live_members(rec["Name"])
    return running != has_live_members(rec["Name"])


def reconcile_network(rec: dict) -> None:
    """Bring the server in line with the network's members: running while it has live
    containers (restarted if it was killed), stopped and forgotten otherwise. Call with
    ``paths.locked("networks")`` held, the bridge up."""
    if has_live_members(rec["Name"]):
        ensure_running(rec)
    else:
        stop(rec["Name"])


def keep_running(container_id: str, stopped: threading.Event,
                 interval: float = KEEP_INTERVAL) -> None:
    """A container's monitor runs this in a thread until ``stopped`` is set: every
    ``interval`` seconds, the DNS server of each user-defined network the container is
    on must be alive; a dead one is started again (under the networks lock, so that
    two monitors that notice at once start one server)."""
    while not stopped.wait(interval):
        for rec in records.list_records():
            if not uses_dns(rec) or is_running(read_state(rec["Name"])):
                continue
            if not any(l.get("Container") == container_id
                       for l in ipam.leases_of(rec["Name"]).values()):
                continue
            try:
                with paths.locked("networks"):
                    if not stopped.is_set() and os.path.exists(records.record_path(rec["Name"])):
                        reconcile_network(rec)
            except (MinidockerError, OSError) as e:
                print(f"minidocker: warning: {e}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ system check
def problems() -> list[tuple[str, str]]:
    """What ``system check`` reports: ``(network, what is wrong)`` for each user-defined
    network whose DNS server does not match its members (:func:`repair` fixes it)."""
    found = []
    for rec in records.list_records():
        if not uses_dns(rec):
            continue
        name = rec["Name"]
        state = read_state(name)
        running, members = is_running(state), has_live_members(name)
        if members and not running:
            found.append((name, "has running containers but no DNS server"))
        elif running and not members:
            found.append((name, f"has a DNS server (pid {state['Pid']}) but no running container"))
        elif state is not None and not running:
            found.append((name, f"keeps the dns.json of a DNS server that is gone (pid {state.get('Pid')})"))
    return found


def repair(network_name: str) -> None:
    """Bring one network's server in line with its members (see :func:`problems`)."""
    with paths.locked("networks"):
        try:
            rec = records.get(network_name)
        except MinidockerError:
            return  # removed meanwhile: nothing of it is left to repair
        reconcile_network(rec)
