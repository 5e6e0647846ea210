"""Attaching to a container: the monitor's attach socket.

Whoever holds a container's stdin and output owns the container's terminal. In Docker
that is the daemon (through containerd-shim's FIFOs); in podman it is ``conmon``, which
listens on an *attach socket*. minidocker does as conmon: the monitor of a detached
container (:mod:`minidocker.engine.monitor`) listens on ``attach.sock`` in the container's directory, and
``minidocker attach``, the API's ``POST /containers/{id}/attach`` and ``docker run``
through the API connect to it.

On that socket both sides speak Docker's own stream framing (the one the Engine API uses
on an attach without a tty): an 8-byte header ``[stream, 0, 0, 0, size as big-endian
uint32]`` then ``size`` bytes. Streams: 0 stdin (client -> monitor), 1 stdout, 2 stderr
(monitor -> client), and 3, control messages as JSON: the client's first frame says
which streams it wants (``{"stdin": true, "stdout": true, "stderr": true}``), later ones
resize the terminal (``{"resize": [rows, cols]}``) or end its input
(``{"close_stdin": true}``).

The monitor sends every chunk of output to every client that asked for that stream, and
copies what clients send on stdin to the container: into its pty (``-t``), or into the
pipe that is its stdin (``-i`` without ``-t``). With ``StdinOnce`` (``docker run -i``),
the first client's end of input closes the container's stdin, and ``cat`` ends.

A client that stops reading for :data:`SEND_TIMEOUT` seconds is dropped: a slow
terminal must not stop the container's output (nor its log).
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import socket
import struct
import termios
import time

from ..errors import Conflict, MinidockerError

STDIN, STDOUT, STDERR, CONTROL = 0, 1, 2, 3
HEADER = struct.Struct(">BxxxL")
SOCKET_NAME = "attach.sock"
SEND_TIMEOUT = 5.0
MAX_FRAME = 1 << 20


def frame(stream: int, data: bytes) -> bytes:
    """One frame of Docker's stream format."""
    return HEADER.pack(stream, len(data)) + data


def read_exact(reader, n: int) -> bytes | None:
    """``n`` bytes from a file-like or socket ``reader``; None at end-of-file."""
    buf = bytearray()
    recv = getattr(reader, "recv", None) or getattr(reader, "read1", None) or reader.read
    while len(buf) < n:
        data = recv(n - len(buf))
        if not data:
            return None
        buf += data
    return bytes(buf)


def read_frame(reader) -> tuple[int, bytes] | None:
    """The next (stream, data) frame, or None at end-of-file."""
    head = read_exact(reader, HEADER.size)
    if head is None:
        return None
    stream, size = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"stream frame too large ({size} bytes)")
    data = read_exact(reader, size) if size else b""
    if data is None:
        return None
    return stream, data


def _path_via_fd(directory: str) -> tuple[int, str]:
    """A short path to ``directory/attach.sock``: a socket's path may have only 107
    bytes (``sun_path``), and a data root's container directories are longer. The
    ``/proc/self/fd/N`` link of an open directory names the same place in 20."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{SOCKET_NAME}"


# ----------------------------------------------------------------- detaching
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's ``--detach-keys`` (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``) -> bytes."""
    out = bytearray()
    for key in (text or DEFAULT_DETACH_KEYS).split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise ValueError(f"invalid detach keys: {text}")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"invalid detach keys: {text}")
    return bytes(out)


def scan_detach(data: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """Split ``data`` into (to send, held back as a possible start of the detach
    sequence, detached?)."""
    if not keys:
        return data, b"", False
    index = data.find(keys)
    if index >= 0:
        return data[:index], b"", True
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return data[:-n], data[-n:], False
    return data, b"", False


# ------------------------------------------------------------------ the client side
def connect(c, stdin: bool = False, stdout: bool = True, stderr: bool = True,
            wait: float = 0.0) -> socket.socket:
    """Connect to the monitor of container ``c`` and say which streams we want; with
    ``wait``, keep trying that many seconds (the container is starting)."""
    deadline = time.monotonic() + wait
    while True:
        fd, path = _path_via_fd(c.dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise Conflict(f"You cannot attach to a stopped container, start it first") \
                    from None
            time.sleep(0.02)
        finally:
            os.close(fd)
    hello = {"stdin": bool(stdin), "stdout": bool(stdout), "stderr": bool(stderr)}
    sock.sendall(frame(CONTROL, json.dumps(hello).encode()))
    return sock


def send_resize(sock: socket.socket, rows: int, cols: int) -> None:
    sock.sendall(frame(CONTROL, json.dumps({"resize": [int(rows), int(cols)]}).encode()))


def send_close_stdin(sock: socket.socket) -> None:
    sock.sendall(frame(CONTROL, b'{"close_stdin": true}'))


# ----------------------------------------------------------------- the monitor side
class _Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.hello: dict | None = None
        self.buf = bytearray()

    def wants(self, stream: int) -> bool:
        return bool(self.hello) and bool(self.hello.get("stdout" if stream == STDOUT else "stderr"))


class AttachHub:
    """The monitor's end: a listening socket, its clients, and where their input goes.

    ``stdin_fd`` is the write end of the container's stdin pipe, or the pty master with
    a tty (then also used for resizes); None when the container takes no input.
    """

    def __init__(self, directory: str, stdin_fd: int | None = None, tty_fd: int | None = None,
                 stdin_once: bool = False):
        self.stdin_fd = stdin_fd
        self.tty_fd = tty_fd
        self.stdin_once = stdin_once
        self.clients: dict[int, _Client] = {}
        self.sel: selectors.BaseSelector | None = None
        dir_fd, path = _path_via_fd(directory)
        try:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            old = os.umask(0o177)      # 0600: the container's stdin is root's only
            try:
                self.listener.bind(path)
            finally:
                os.umask(old)
            self.listener.listen(16)
        finally:
            os.close(dir_fd)
        self.path = os.path.join(directory, SOCKET_NAME)

    # -- the selector
    def register(self, sel: selectors.BaseSelector) -> None:
        self.sel = sel
        sel.register(self.listener, selectors.EVENT_READ, self)
        for client in self.clients.values():
            sel.register(client.sock, selectors.EVENT_READ, self)

    def owns(self, key) -> bool:
        return key.data is self

    def handle(self, key) -> None:
        """Something to read on the listener (a new client) or on a client."""
        if key.fileobj is self.listener:
            self._accept()
        else:
            self._read(self.clients[key.fd])

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.settimeout(SEND_TIMEOUT)
        client = _Client(sock)
        self.clients[sock.fileno()] = client
        if self.sel is not None:
            self.sel.register(sock, selectors.EVENT_READ, self)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(client, eof=True)
            return
        client.buf += data
        while len(client.buf) >= HEADER.size:
            stream, size = HEADER.unpack_from(client.buf)
            if size > MAX_FRAME:
                self._drop(client, eof=True)
                return
            if len(client.buf) < HEADER.size + size:
                break
            payload = bytes(client.buf[HEADER.size:HEADER.size + size])
            del client.buf[:HEADER.size + size]
            self._frame(client, stream, payload)

    def _frame(self, client: _Client, stream: int, payload: bytes) -> None:
        if stream == CONTROL:
            try:
                message = json.loads(payload)
            except ValueError:
                return
            if not isinstance(message, dict):
                return
            if client.hello is None:
                client.hello = message
            if "resize" in message and self.tty_fd is not None:
                rows, cols = message["resize"]
                try:
                    fcntl.ioctl(self.tty_fd, termios.TIOCSWINSZ,
                                struct.pack("HHHH", int(rows), int(cols), 0, 0))
                except (OSError, ValueError, TypeError):
                    pass
            if message.get("close_stdin"):
                self._end_input(client)
        elif stream == STDIN and client.hello and client.hello.get("stdin"):
            if self.stdin_fd is not None:
                try:
                    _write_all(self.stdin_fd, payload)
                except OSError:
                    self._close_stdin()

    def _end_input(self, client: _Client) -> None:
        if client.hello and client.hello.get("stdin") and self.stdin_once:
            self._close_stdin()

    def _close_stdin(self) -> None:
        """End the container's input: close the pipe (it reads EOF). A pty is not
        closed (that would hang up the terminal): the container keeps its tty."""
        if self.stdin_fd is not None and self.tty_fd is None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def _drop(self, client: _Client, eof: bool = False) -> None:
        if eof:
            self._end_input(client)
        self.clients.pop(client.sock.fileno(), None)
        if self.sel is not None:
            try:
                self.sel.unregister(client.sock)
            except (KeyError, ValueError):
                pass
        client.sock.close()

    # -- output
    def broadcast(self, stream: int, data: bytes) -> None:
        """Send a chunk of the container's output to each client that wants it."""
        if not self.clients:
            return
        packet = frame(stream, data)
        for client in list(self.clients.values()):
            if client.wants(stream):
                try:
                    client.sock.sendall(packet)
                except OSError:       # gone, or not reading for SEND_TIMEOUT seconds
                    self._drop(client)

    def wait_for_clients(self, count: int, timeout: float = 10.0) -> None:
        """Before the container's command starts: accept ``count`` clients and their
        hello, so that they see its output from the first byte (``docker run``
        attaches before it starts the container)."""
        sel = selectors.DefaultSelector()
        saved = self.sel
        self.register(sel)
        deadline = time.monotonic() + timeout
        try:
            while sum(1 for c in self.clients.values() if c.hello is not None) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MinidockerError("timed out waiting for the attach clients")
                for key, _ in sel.select(left):
                    self.handle(key)
        finally:
            sel.close()
            self.sel = saved

    def close(self) -> None:
        """The container has ended: every client sees end-of-file."""
        for client in list(self.clients.values()):
            try:
                client.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.sock.close()
        self.clients.clear()
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self.stdin_fd is not None and self.tty_fd is None:
            os.close(self.stdin_fd)
            self.stdin_fd = None


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
