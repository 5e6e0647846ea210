"""iptables rules for the bridges: NAT out, published ports in.

Docker programs netfilter through chains of its own so that its rules never mix with the
host's. Ours, with the same jobs::

    nat    PREROUTING  -m addrtype --dst-type LOCAL -j MINIDOCKER      traffic from outside
    nat    OUTPUT      -m addrtype --dst-type LOCAL -j MINIDOCKER      the host's own traffic
    nat    MINIDOCKER  -p tcp --dport 8080 -j DNAT --to 172.17.0.2:80  one per published port
    nat    POSTROUTING -j MINIDOCKER-POSTROUTING
    nat    MINIDOCKER-POSTROUTING -s 172.17.0.0/16 ! -o minidocker0 -j MASQUERADE   egress
    nat    MINIDOCKER-POSTROUTING -o minidocker0 -m addrtype --src-type LOCAL -j MASQUERADE
    filter FORWARD -j MINIDOCKER-FORWARD
    filter MINIDOCKER-FORWARD -i minidocker0 -j ACCEPT / -o minidocker0 -j ACCEPT

*DNAT* rewrites the destination of the first packet of a connection (conntrack rewrites
the rest, and the replies, the other way). *MASQUERADE* rewrites the source to the
address of the outgoing interface, so that replies come back to us: for containers
reaching out, and for connections from 127.0.0.1 (a container could not answer
127.0.0.1, that is its own loopback).

Every rule carries a comment naming what it is for (``minidocker bridge NAME`` or
``minidocker container ID``) so that it can be found and deleted again, also after a
crash. The chains exist only while some bridge needs them.

Changes to these host-wide tables are serialised with an flock in ``/run/lock`` (several
data roots may share the host) and iptables' own ``-w`` lock.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess

from ..errors import MinidockerError

NAT_CHAIN = "MINIDOCKER"
POSTROUTING_CHAIN = "MINIDOCKER-POSTROUTING"
FORWARD_CHAIN = "MINIDOCKER-FORWARD"

#: (table, builtin chain, our chain, match before the jump)
JUMPS = [
    ("nat", "PREROUTING", NAT_CHAIN, ["-m", "addrtype", "--dst-type", "LOCAL"]),
    ("nat", "OUTPUT", NAT_CHAIN, ["-m", "addrtype", "--dst-type", "LOCAL"]),
    ("nat", "POSTROUTING", POSTROUTING_CHAIN, []),
    ("filter", "FORWARD", FORWARD_CHAIN, []),
]

HOST_LOCK = "/run/lock/minidocker-network.lock"


class host_lock:
    """An flock for host-wide network state (bridges, iptables), shared by all data roots."""

    def __enter__(self):
        os.makedirs(os.path.dirname(HOST_LOCK), exist_ok=True)
        self.fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def available() -> bool:
    return shutil.which("iptables") is not None


def iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    if not available():
        raise MinidockerError("iptables is not installed: it is needed to publish ports "
                              "(apt-get install iptables)")
    proc = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise MinidockerError(f"iptables {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _exists(table: str, chain: str, rule: list[str]) -> bool:
    return iptables("-t", table, "-C", chain, *rule, check=False).returncode == 0


def _chain_exists(table: str, chain: str) -> bool:
    return iptables("-t", table, "-S", chain, check=False).returncode == 0


def _ensure_rule(table: str, chain: str, rule: list[str]) -> None:
    if not _exists(table, chain, rule):
        iptables("-t", table, "-A", chain, *rule)


def ensure_chains() -> None:
    """Create our chains and the jumps to them from the built-in chains (idempotent)."""
    for table, builtin, ours, match in JUMPS:
        if not _chain_exists(table, ours):
            iptables("-t", table, "-N", ours, check=False)
        _ensure_rule(table, builtin, [*match, "-j", ours])


def comment(kind: str, name: str) -> list[str]:
    return ["-m", "comment", "--comment", f"minidocker {kind} {name}"]


def bridge_rules(bridge: str, subnet: str, internal: bool = False) -> list[tuple[str, str, list[str]]]:
    """The rules one bridge needs (see the module docstring). An *internal* network
    (``network create --internal``) gets no NAT, and forwarding between it and any other
    interface is dropped: its containers only reach each other."""
    tag = comment("bridge", bridge)
    if internal:
        return [
            ("filter", FORWARD_CHAIN, ["-i", bridge, "-o", bridge, *tag, "-j", "ACCEPT"]),
            ("filter", FORWARD_CHAIN, ["-i", bridge, "!", "-o", bridge, *tag, "-j", "DROP"]),
            ("filter", FORWARD_CHAIN, ["-o", bridge, "!", "-i", bridge, *tag, "-j", "DROP"]),
        ]
    return [
        ("nat", POSTROUTING_CHAIN, ["-s", subnet, "!", "-o", bridge, *tag, "-j", "MASQUERADE"]),
        ("nat", POSTROUTING_CHAIN, ["-o", bridge, "-m", "addrtype", "--src-type", "LOCAL",
                                    *tag, "-j", "MASQUERADE"]),
        ("filter", FORWARD_CHAIN, ["-i", bridge, *tag, "-j", "ACCEPT"]),
        ("filter", FORWARD_CHAIN, ["-o", bridge, *tag, "-j", "ACCEPT"]),
    ]


def add_bridge(bridge: str, subnet: str, internal: bool = False) -> None:
    """Egress NAT and forwarding for one bridge. Call with :class:`host_lock` held."""
    if not available():
        return  # without iptables: no egress NAT and no -p, but containers still talk
    ensure_chains()
    for table, chain, rule in bridge_rules(bridge, subnet, internal):
        _ensure_rule(table, chain, rule)


def dnat_rule(bridge: str, host_ip: str, host_port: int, proto: str, container_ip: str,
              container_port: int, container_id: str) -> list[str]:
    rule = ["!", "-i", bridge]
    if host_ip and host_ip != "0.0.0.0":
        rule += ["-d", host_ip]
    rule += ["-p", proto, "-m", proto, "--dport", str(host_port), *comment("container", container_id[:12]),
             "-j", "DNAT", "--to-destination", f"{container_ip}:{container_port}"]
    return rule


def add_dnat(rule: list[str]) -> None:
    """Call with :class:`host_lock` held."""
    ensure_chains()
    iptables("-t", "nat", "-A", NAT_CHAIN, *rule)


def _rules_tagged(table: str, chain: str, tag: str) -> list[list[str]]:
    """Rules of ``chain`` whose comment is exactly ``tag``, as argument lists for ``-D``."""
    proc = iptables("-t", table, "-S", chain, check=False)
    if proc.returncode != 0:
        return []
    found = []
    for line in proc.stdout.splitlines():
        words = shlex.split(line)
        if words[:2] == ["-A", chain] and "--comment" in words:
            if words[words.index("--comment") + 1] == tag:
                found.append(words[2:])
    return found


def _delete_tagged(tag: str) -> None:
    for table, chain in (("nat", NAT_CHAIN), ("nat", POSTROUTING_CHAIN), ("filter", FORWARD_CHAIN)):
        for rule in _rules_tagged(table, chain, tag):
            iptables("-t", table, "-D", chain, *rule, check=False)


def remove_container(container_id: str) -> None:
    """Delete the DNAT rules of one container. Call with :class:`host_lock` held."""
    if not available():
        return
    _delete_tagged(f"minidocker container {container_id[:12]}")
    _remove_chains_if_unused()


def remove_bridge(bridge: str) -> None:
    """Delete one bridge's rules, and our chains if nothing else uses them any more.
    Call with :class:`host_lock` held."""
    if not available():
        return
    _delete_tagged(f"minidocker bridge {bridge}")
    _remove_chains_if_unused()


def _chain_rules(table: str, chain: str) -> list[str]:
    proc = iptables("-t", table, "-S", chain, check=False)
    if proc.returncode != 0:
        return []
    return [line for line in proc.stdout.splitlines() if line.startswith("-A ")]


def _remove_chains_if_unused() -> None:
    """When no bridge and no container has a rule left, take our chains away too, so the
    host's tables look as they did before minidocker came."""
    if any(_chain_rules(t, c) for t, c in (("nat", NAT_CHAIN), ("nat", POSTROUTING_CHAIN),
                                            ("filter", FORWARD_CHAIN))):
        return
    for table, builtin, ours, match in JUMPS:
        while _exists(table, builtin, [*match, "-j", ours]):
            iptables("-t", table, "-D", builtin, *match, "-j", ours, check=False)
    for table, _builtin, ours, _match in JUMPS:
        if _chain_exists(table, ours):
            iptables("-t", table, "-X", ours, check=False)
