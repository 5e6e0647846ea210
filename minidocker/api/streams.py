"""The byte streams of a container as the Engine API carries them: logs and attach.

Without a tty, a container has two output streams, and one HTTP connection must carry
both: Docker *multiplexes* them, each chunk behind an 8-byte header ``[stream, 0, 0,
0, size (big-endian uint32)]`` (1 = stdout, 2 = stderr). With a tty there is only one
stream (the terminal), sent as raw bytes. ``docker logs`` and ``docker attach`` both
read this; :func:`minidocker.engine.attach.frame` writes the header.

An attach session (``POST /containers/{id}/attach``, hijacked) is a client of the
container's monitor (:mod:`minidocker.engine.attach`): output frames come from the
monitor, the client's keystrokes go to it. A client that attaches *before* the
container starts (``docker run`` does: attach, then wait, then start) waits in
:data:`PENDING`; the start handler tells the monitor how many to wait for, and the
sessions connect once its socket listens, so that not one byte of output is lost.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from .. import clock
from ..engine import attach as monitor_attach
from ..engine.logs import read_records



# ------------------------------------------------------------------------------- logs
def log_frames(c, stdout=True, stderr=True, follow=False, timestamps=False, tail="all",
               since=None, until=None, tty=False, cancelled=None, poll=0.1):
    """Yield the container's log as the API sends it (framed unless ``tty``)."""
    wanted = {"stdout"} if stdout else set()
    if stderr:
        wanted.add("stderr")

    def encode(rec):
        if rec["stream"] not in wanted:
            return None
        t = clock.parse(rec.get("time", "")) or 0
        if since is not None and t < since:
            return None
        if until is not None and t > until:
            return None
        data = rec["log"].encode()
        if timestamps:
            data = rec["time"].encode() + b" " + data
        if tty:
            return data
        return monitor_attach.frame(1 if rec["stream"] == "stdout" else 2, data)

    records = list(read_records(c.log_path))
    offset = records[-1][1] if records else 0
    if tail != "all":
        records = records[-tail:] if tail else []
    for rec, _ in records:
        data = encode(rec)
        if data:
            yield data
    while follow:
        if cancelled and cancelled():
            return
        running = c.monitor_alive()
        for rec, offset in read_records(c.log_path, offset):
            data = encode(rec)
            if data:
                yield data
        if not running:
            return
        if until is not None and time.time() > until:
            return
        time.sleep(poll)


# ----------------------------------------------------------------------------- attach
class Pending:
    """Attach sessions waiting for their container to start, by container id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sessions: dict[str, list] = {}

    def add(self, cid: str, session) -> None:
        with self.lock:
            waiting = self.sessions.setdefault(cid, [])
            if session not in waiting:
                waiting.append(session)

    def remove(self, cid: str, session) -> None:
        with self.lock:
            waiting = self.sessions.get(cid, [])
            if session in waiting:
                waiting.remove(session)
            if not waiting:
                self.sessions.pop(cid, None)

    def take(self, cid: str) -> list:
        """The sessions the monitor of ``cid`` is to wait for (they are its now)."""
        with self.lock:
            taken = self.sessions.pop(cid, [])
            for s in taken:
                s.claimed = True
            return taken


PENDING = Pending()


class AttachSession:
    """One hijacked attach connection (see the module doc)."""

    def __init__(self, c, stdin=False, stdout=True, stderr=True, logs=False, stream=True,
                 detach_keys=None):
        self.c = c
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.logs, self.stream = logs, stream
        try:
            self.detach_keys = monitor_attach.parse_detach_keys(detach_keys)
        except ValueError as e:
            from .http import ApiError
            raise ApiError(400, str(e)) from None
        self.tty = bool(c.state["Config"].get("Tty"))
        self.claimed = False
        self._go = threading.Event()
        self._cancel = threading.Event()

    def prepare(self) -> None:
        """Before the 101 answer goes out: a client that attaches to a container that
        is not running is put on the waiting list *now*, because once it has the
        answer it sends ``start`` at once (it must not find the list empty)."""
        if self.stream and not self.c.state["State"]["Running"]:
            PENDING.add(self.c.id, self)

    def abort(self) -> None:
        PENDING.remove(self.c.id, self)

    def go(self) -> None:
        self._go.set()

    def cancel(self) -> None:
        self._cancel.set()

    # -- the hijacked connection
    def run(self, reader, writer) -> None:
        try:
            self._run(reader, writer)
        finally:
            PENDING.remove(self.c.id, self)

    def _run(self, reader, writer) -> None:
        if self.logs:
            for data in log_frames(self.c, stdout=self.stdout, stderr=self.stderr, tty=self.tty):
                writer.write(data)
        if not self.stream:
            return
        sock = self._connect(writer)
        if sock is None:
            return
        try:
            pump = threading.Thread(target=self._client_to_monitor, args=(reader, sock),
                                    daemon=True, name="attach-stdin")
            pump.start()
            self._monitor_to_client(sock, writer)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _alive(self) -> bool:
        return self.c.monitor_alive()

    def _connect(self, writer):
        """The monitor's socket: now if the container runs, else once it starts."""
        streams = dict(stdin=self.stdin, stdout=self.stdout, stderr=self.stderr)
        self.c.reload()
        if self.c.state["State"]["Running"] and self._alive() and not self.claimed:
            return monitor_attach.connect(self.c, wait=2, **streams)
        if not self.claimed:
            PENDING.add(self.c.id, self)
        try:
            while True:
                if self._go.wait(0.05):
                    return monitor_attach.connect(self.c, wait=5, **streams)
                if self._cancel.is_set():
                    return None
                if self.claimed:
                    continue            # the start handler has us: wait for its go()
                # The client's end-of-file says nothing here: the docker CLI half-closes
                # its side at once when it has no input to send (CloseWrite). A client
                # that is really gone is noticed at the first write.
                if not os.path.isdir(self.c.dir):
                    return None
                try:
                    running = self.c.reload().state["State"]["Running"]
                except (FileNotFoundError, ValueError):
                    continue
                if running and self._alive():   # started by someone else (the CLI)
                    return monitor_attach.connect(self.c, wait=2, **streams)
        finally:
            PENDING.remove(self.c.id, self)

    def _monitor_to_client(self, sock, writer) -> None:
        while True:
            try:
                got = monitor_attach.read_frame(sock)
            except (OSError, ValueError):
                return
            if got is None:
                return
            stream, data = got
            if stream not in (monitor_attach.STDOUT, monitor_attach.STDERR):
                continue
            writer.write(data if self.tty else monitor_attach.frame(stream, data))

    def _client_to_monitor(self, reader, sock) -> None:
        keys = self.detach_keys
        held = b""
        try:
            while True:
                try:
                    data = reader.read1(65536)
                except (OSError, ValueError):
                    data = b""
                if not data:
                    if self.stdin:
                        monitor_attach.send_close_stdin(sock)
                    return
                if not self.stdin:
                    continue
                data, held, detached = monitor_attach.scan_detach(held + data, keys)
                if data:
                    sock.sendall(monitor_attach.frame(monitor_attach.STDIN, data))
                if detached:
                    # Docker's detach: the container runs on, the session ends
                    sock.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:
            return
