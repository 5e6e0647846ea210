"""The DNS server of one user-defined network: ``python -m minidocker.network.dns_server NAME``.

Started by :func:`.dns.ensure_running` (read :mod:`.dns` first: why one server per
network, why on the gateway's address, who starts and stops it). This process:

1. listens on the network's gateway address, port 53, over UDP and TCP (a resolver
   asks over UDP, and again over TCP when an answer came back truncated, RFC 7766);
2. becomes a daemon (it forks; its parent, the process its starter waits for, exits),
   writes ``dns.json`` (its pid and start time) and says ``ok`` on its stdout;
3. answers each query (:func:`respond`): an A query for a name of the asking
   container's networks with their addresses (:mod:`.dns_names`); AAAA (or any other
   type) for such a name with no record and no error (the networks are IPv4 only); a
   PTR query for one of
   their addresses with ``NAME.NETWORK``; anything else is *forwarded* to the host's
   resolvers (:mod:`minidocker.resolvconf`), byte for byte, and their answer relayed;
4. every two seconds asks itself whether it still has a reason to run (:func:`watch`),
   and exits when not; SIGTERM (from :func:`.dns.stop`) ends it at once.

Forwarding happens from the host's network namespace, so the host's loopback
resolvers (systemd-resolved's 127.0.0.53) are reachable, unlike from a container; the
default bridge's containers, which ask the host's resolvers themselves, still get them
filtered out of their resolv.conf (engine/etc_files.py). A host that lists no resolver
gets SERVFAIL for outside names: nothing is sent to a resolver the host did not name.

DNS messages are read and written with dnslib (RFC 1035's wire format: the header, the
question, resource records, name compression), imported here only.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dnslib import A, PTR, QTYPE, RCODE, RR, DNSError, DNSRecord

from .. import clock, paths, resolvconf
from ..kernel import processes
from . import dns, dns_names, records

#: Docker's embedded DNS gives its answers a TTL of 600 seconds.
TTL = 600
#: How long to wait for one upstream resolver before trying the next.
UPSTREAM_TIMEOUT = 2.0
#: How often the server checks that it still has a reason to run.
WATCH_INTERVAL = 2.0
#: Without EDNS (RFC 6891) a UDP answer may be at most 512 bytes (RFC 1035 4.2.1).
UDP_DEFAULT_SIZE = 512


def log(message: str) -> None:
    """One line in ``dns.log`` (the server's stderr)."""
    print(f"{clock.rfc3339()} dns[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------- answers
def _packed(reply: DNSRecord, query: DNSRecord, over_tcp: bool) -> bytes:
    """The reply's bytes; over UDP cut to what the client can take (TC set: it asks
    again over TCP)."""
    data = reply.pack()
    if not over_tcp:
        limit = max([UDP_DEFAULT_SIZE, *(rr.rclass for rr in query.ar if rr.rtype == QTYPE.OPT)])
        if len(data) > limit:
            data = reply.truncate().pack()
    return data


def _error(query: DNSRecord, rcode: int, over_tcp: bool) -> bytes:
    reply = query.reply()
    reply.header.aa = 0
    reply.header.rcode = rcode
    return _packed(reply, query, over_tcp)


def respond(server: "Server", data: bytes, client_ip: str, over_tcp: bool) -> bytes | None:
    """The answer to one DNS message from ``client_ip`` (None: not worth one)."""
    try:
        query = DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError):
        return None  # not a DNS message: a resolver would not understand an answer either
    if query.header.qr:
        return None  # an answer, not a question: never answer those (no loops)
    if query.header.opcode != 0 or len(query.questions) != 1:
        return _error(query, RCODE.NOTIMP, over_tcp)
    q = query.q
    view = dns_names.view_for(server.directory, server.network, client_ip)
    qtype = q.qtype
    if q.qclass == 1 and qtype != QTYPE.PTR:
        addresses = dns_names.lookup(view, str(q.qname))
        if addresses is not None:
            # A name of ours: its addresses for A (and ANY); for any other type (AAAA,
            # MX...) "no such record" -- NOERROR and no answer, not NXDOMAIN, which
            # would say the name itself does not exist. Never forwarded: the host's
            # resolvers need not learn our containers' names.
            reply = query.reply()  # aa: these names are ours; ra: others we forward
            if qtype in (QTYPE.A, QTYPE.ANY):
                random.shuffle(addresses)  # Docker's round robin for a shared alias
                for ip in addresses:
                    reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
            return _packed(reply, query, over_tcp)
    if q.qclass == 1 and qtype == QTYPE.PTR:
        name = dns_names.reverse(view, str(q.qname))
        if name:
            reply = query.reply()
            reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(name + "."), ttl=TTL))
            return _packed(reply, query, over_tcp)
    if not view.may_forward:
        return _error(query, RCODE.SERVFAIL, over_tcp)
    answer = server.forward(data, over_tcp)
    if answer is None:
        return _error(query, RCODE.SERVFAIL, over_tcp)
    return answer


# ----------------------------------------------------------------------- upstream
def exchange(data: bytes, upstream: str, over_tcp: bool, timeout: float) -> bytes:
    """Send one query to ``upstream``:53 and return its answer, as bytes (the query's id
    is the client's: the answer goes back as it came)."""
    family = socket.AF_INET6 if ":" in upstream else socket.AF_INET
    if over_tcp:
        with socket.create_connection((upstream, 53), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(data)) + data)
            return _read_tcp_message(s)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((upstream, 53))  # a connected socket only receives from that peer
        s.send(data)
        deadline = time.monotonic() + timeout
        while True:
            answer = s.recv(65535)
            if answer[:2] == data[:2]:
                return answer
            if time.monotonic() > deadline:  # something else, on and on
                raise TimeoutError(f"no answer from {upstream}")


def _read_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed in the middle of a message")
        data += chunk
    return data


def _read_tcp_message(s: socket.socket) -> bytes:
    """Over TCP each DNS message is preceded by its length, two bytes (RFC 1035 4.2.2)."""
    (length,) = struct.unpack("!H", _read_exactly(s, 2))
    return _read_exactly(s, length)


# ----------------------------------------------------------------------- the server
class Server:
    """The sockets of one network's server, and what its threads share."""

    def __init__(self, network: str, address: str, udp: socket.socket, tcp: socket.socket):
        self.network, self.address = network, address
        self.udp, self.tcp = udp, tcp
        self.directory = dns_names.Directory()
        # Local answers take microseconds; a forwarded query may wait for an upstream
        # for seconds. A few threads keep one slow upstream from holding up the rest.
        self.pool = ThreadPoolExecutor(max_workers=16)

    def upstreams(self) -> list[str]:
        """The host's resolvers, read now (they may change); never our own address."""
        ours = {records.gateway_of(rec) for rec in self.directory.networks().values()}
        found = [a for a in resolvconf.nameservers(resolvconf.read_host()) if a not in ours]
        return found[:resolvconf.MAXNS]

    def forward(self, data: bytes, over_tcp: bool) -> bytes | None:
        """Ask the host's resolvers in order, as a stub resolver would; None if none
        answers."""
        for upstream in self.upstreams():
            try:
                return exchange(data, upstream, over_tcp, UPSTREAM_TIMEOUT)
            except (OSError, ValueError):
                continue  # timed out, refused (ICMP port unreachable), reset: the next one
        return None

    # -- UDP: one datagram, one query
    def serve_udp(self) -> None:
        while True:
            try:
                data, (client_ip, port) = self.udp.recvfrom(65535)
            except OSError:
                return
            self.pool.submit(self._answer_udp, data, client_ip, port)

    def _answer_udp(self, data: bytes, client_ip: str, port: int) -> None:
        try:
            answer = respond(self, data, client_ip, over_tcp=False)
            if answer:
                self.udp.sendto(answer, (client_ip, port))
        except Exception as e:  # one bad query must not end the server
            log(f"error answering {client_ip}: {e!r}")

    # -- TCP: a connection may carry several queries, one after the other
    def serve_tcp(self) -> None:
        while True:
            try:
                conn, (client_ip, _port) = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._answer_tcp, args=(conn, client_ip), daemon=True).start()

    def _answer_tcp(self, conn: socket.socket, client_ip: str) -> None:
        with conn:
            conn.settimeout(10)  # an idle connection is closed (RFC 7766 6.2.3)
            try:
                while True:
                    answer = respond(self, _read_tcp_message(conn), client_ip, over_tcp=True)
                    if answer:
                        conn.sendall(struct.pack("!H", len(answer)) + answer)
            except (OSError, ConnectionError):
                return
            except Exception as e:
                log(f"error answering {client_ip} over tcp: {e!r}")

    # -- when to stop
    def reason_to_exit(self) -> str | None:
        if not os.path.exists(records.record_path(self.network)):
            return "its network is gone"
        state = dns.read_state(self.network)
        if not state or state.get("Pid") != os.getpid():
            return "dns.json names another server"
        if not dns.has_live_members(self.network):
            return "no container is left on the network"
        return None

    def watch(self) -> None:
        """The safety net behind :func:`.dns.stop`: should every container's monitor
        die (``kill -9``, a crash) with nobody left to stop this server, it stops itself
        a moment later. Decided under the networks lock, which a container joining
        holds: it cannot join a server that is leaving. Never takes the lock of a data
        root that is gone (that would make its ``locks/`` again)."""
        while True:
            time.sleep(WATCH_INTERVAL)
            reason = self.reason_to_exit()
            if reason is None:
                continue
            if reason == "its network is gone":
                self.exit(reason)
            with paths.locked("networks"):
                reason = self.reason_to_exit()
                if reason is not None:
                    self.exit(reason)

    def exit(self, reason: str) -> None:
        """Close the sockets (the port is free again before any lock is let go),
        forget ``dns.json`` if it is ours, and exit."""
        for s in (self.udp, self.tcp):
            try:
                s.close()
            except OSError:
                pass
        state = dns.read_state(self.network)
        if state and state.get("Pid") == os.getpid():
            try:
                os.unlink(dns.state_path(self.network))
            except FileNotFoundError:
                pass
        log(f"stopping: {reason}")
        os._exit(0)


def listen(address: str, port: int, wait: float = 2.0) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on ``address:port``. A server that just stopped may still hold
    the port for a moment: ``EADDRINUSE`` is retried for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        opened = []
        try:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            opened.append(udp)
            udp.bind((address, port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            opened.append(tcp)
            # SO_REUSEADDR lets a TCP listener bind over connections left in TIME_WAIT by
            # the previous server; it never lets two listeners share the port. (Not set
            # on UDP, where it *would* let two servers bind the same port.)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, port))
            tcp.listen(64)
            return udp, tcp
        except OSError as e:
            for s in opened:
                s.close()
            if e.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise OSError(e.errno, f"cannot listen on {address}:{port}: {e.strerror}") from None


def _reason(e: BaseException) -> str:
    """An error in words, without Python's ``[Errno N]``."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m minidocker.network.dns_server NETWORK", file=sys.stderr)
        return 2
    network = argv[0]
    try:
        rec = paths.read_json(records.record_path(network))
        address = records.gateway_of(rec)
        udp, tcp = listen(address, dns.PORT)
    except (OSError, ValueError, KeyError, IndexError) as e:
        print(f"error: {_reason(e)}", flush=True)
        return 1
    if os.fork():
        os._exit(0)  # the starter waits for this process; the daemon is the child
    try:
        me = os.getpid()
        paths.write_json(dns.state_path(network), {
            "Pid": me, "PidStart": processes.start_time(me), "Network": network,
            "NetworkID": rec["Id"], "Address": address, "Port": dns.PORT,
            "Started": clock.rfc3339()})
    except OSError as e:
        print(f"error: cannot write {dns.state_path(network)}: {_reason(e)}", flush=True)
        os._exit(1)
    server = Server(network, address, udp, tcp)
    signal.signal(signal.SIGTERM, lambda *_: server.exit("stopped (SIGTERM)"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log(f"listening on {address}:{dns.PORT} (udp, tcp) for network {network}")
    print("ok", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the starter stops reading at "ok": nothing more goes there
    os.close(devnull)
    threading.Thread(target=server.serve_udp, daemon=True).start()
    threading.Thread(target=server.serve_tcp, daemon=True).start()
    server.watch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
