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

Each step reads the tables once (``iptables-save``) and makes all its changes in one
``iptables-restore --noflush`` (the same lines ``iptables`` takes: ``-A``, ``-D``, ``-X``,
``:CHAIN`` to create one), which the kernel applies per table in one commit: two
processes per step, where one ``iptables -C``/``-A`` per rule took some twenty-five.
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
    return shutil.which("iptables-restore") is not None


class Tables:
    """What ``iptables-save`` shows of the ``nat`` and ``filter`` tables: the chains, and
    each rule as its words (``["-A", "FORWARD", "-j", "MINIDOCKER-FORWARD"]``)."""

    def __init__(self, text: str):
        self.chains: dict[str, set[str]] = {"nat": set(), "filter": set()}
        self.rules: dict[str, list[list[str]]] = {"nat": [], "filter": []}
        table = None
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif table in self.chains and line.startswith(":"):
                self.chains[table].add(line[1:].split()[0])
            elif table in self.chains and line.startswith("-A "):
                self.rules[table].append(shlex.split(line))

    def rules_of(self, table: str, chain: str) -> list[list[str]]:
        return [w for w in self.rules[table] if w[1] == chain]

    def tagged(self, table: str, chain: str, tag: str) -> list[list[str]]:
        """Rules of ``chain`` whose comment is exactly ``tag``."""
        return [w for w in self.rules_of(table, chain)
                if "--comment" in w and w[w.index("--comment") + 1] == tag]


def read_tables() -> Tables:
    proc = subprocess.run(["iptables-save"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise MinidockerError(f"iptables-save: {proc.stderr.strip()}")
    return Tables(proc.stdout)


def _line(words: list[str]) -> str:
    """One iptables-restore line; it splits on blanks and understands double quotes."""
    return " ".join(f'"{w}"' if (" " in w or not w) else w for w in words)


def apply(changes: dict[str, list[list[str]]]) -> None:
    """Make ``changes`` (``{table: [[":CHAIN"] | ["-A", CHAIN, ...] | ["-D", ...] |
    ["-X", CHAIN]]}``) in one ``iptables-restore --noflush``: what is not named stays."""
    text = "".join(f"*{table}\n" + "".join(_line(c) + "\n" for c in lines) + "COMMIT\n"
                   for table, lines in changes.items() if lines)
    if not text:
        return
    if not available():
        raise MinidockerError("iptables is not installed: it is needed to publish ports "
                              "(apt-get install iptables)")
    proc = subprocess.run(["iptables-restore", "-w", "--noflush"], input=text,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise MinidockerError(f"iptables-restore: {proc.stderr.strip()}\n{text}")


def _ensure_chains(tables: Tables) -> dict[str, list[list[str]]]:
    """The changes that create our chains and the jumps to them (none if they exist).
    A chain is declared (``:NAME``) only when missing: declaring one that exists in a
    ``--noflush`` restore would empty it."""
    changes: dict[str, list[list[str]]] = {"nat": [], "filter": []}
    for table, builtin, ours, match in JUMPS:
        if ours not in tables.chains[table]:
            tables.chains[table].add(ours)
            changes[table].insert(0, [f":{ours}", "-", "[0:0]"])
        if not any(w[-2:] == ["-j", ours] for w in tables.rules_of(table, builtin)):
            changes[table].append(["-A", builtin, *match, "-j", ours])
    return changes


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
    """Egress NAT and forwarding for one bridge. Call with :class:`host_lock` held.

    A bridge's rules are added together, so finding any rule with its comment means
    they are all there (a bridge used by a second container costs one iptables-save)."""
    if not available():
        return  # without iptables: no egress NAT and no -p, but containers still talk
    tables = read_tables()
    changes = _ensure_chains(tables)
    tag = f"minidocker bridge {bridge}"
    if not any(tables.tagged(t, c, tag) for t, c in OUR_CHAINS):
        for table, chain, rule in bridge_rules(bridge, subnet, internal):
            changes[table].append(["-A", chain, *rule])
    apply(changes)


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
    changes = _ensure_chains(read_tables())
    changes["nat"].append(["-A", NAT_CHAIN, *rule])
    apply(changes)


#: Our chains that hold tagged rules, by table.
OUR_CHAINS = (("nat", NAT_CHAIN), ("nat", POSTROUTING_CHAIN), ("filter", FORWARD_CHAIN))


def _remove_tagged(tag: str) -> None:
    """Delete every rule commented ``tag``, and our chains (with the jumps to them) if
    nothing is left in them, so that the host's tables look as they did before
    minidocker came. One iptables-save, one iptables-restore."""
    tables = read_tables()
    changes: dict[str, list[list[str]]] = {"nat": [], "filter": []}
    left = 0
    for table, chain in OUR_CHAINS:
        doomed = tables.tagged(table, chain, tag)
        changes[table] += [["-D", *w[1:]] for w in doomed]
        left += len(tables.rules_of(table, chain)) - len(doomed)
    if not left:
        for table, builtin, ours, _match in JUMPS:
            changes[table] += [["-D", *w[1:]] for w in tables.rules_of(table, builtin)
                               if w[-2:] == ["-j", ours]]
        for table, _builtin, ours, _match in JUMPS:
            if ours in tables.chains[table] and ["-X", ours] not in changes[table]:
                changes[table].append(["-X", ours])
    apply(changes)


def remove_container(container_id: str) -> None:
    """Delete the DNAT rules of one container. Call with :class:`host_lock` held."""
    if not available():
        return
    _remove_tagged(f"minidocker container {container_id[:12]}")


def remove_bridge(bridge: str) -> None:
    """Delete one bridge's rules, and our chains if nothing else uses them any more.
    Call with :class:`host_lock` held."""
    if not available():
        return
    _remove_tagged(f"minidocker bridge {bridge}")
