"""The API service: listen on a socket, read HTTP requests, hand them to the handlers.

Where Docker's daemon listens (``/run/docker.sock``), ``minidocker system service``
listens: on a unix socket, mode 0660, owned by root and the group ``minidocker`` when it
exists, so that only root and that group can drive the engine (whoever can talk to
this socket can run a privileged container: the socket *is* root). A TCP address is
served only on 127.0.0.1 and only when asked for by name, with a warning: it has no
authentication at all.

One thread per connection (a connection may be an attach session that lasts hours), at
most :data:`MAX_CONNECTIONS` of them; an idle keep-alive connection is closed after
:data:`IDLE_TIMEOUT` seconds. A request that cannot be parsed gets a 400 and the
connection is closed; a handler that fails gets a 500 with a one-line message and the
service keeps serving. ``SIGTERM`` or ``SIGINT`` stop it: the socket goes away, the
containers keep running (each has its own monitor process).
"""

from __future__ import annotations

import email.utils
import grp
import os
import signal
import socket
import stat
import sys
import threading
import time
import traceback

from .. import __version__
from ..errors import Conflict, InvalidInput, MinidockerError, NotFound
from . import router
from .http import (ApiError, Body, ClientGone, Hijack, RawStream, Request, Response,
                   SocketWriter, error_response)

DEFAULT_HOST = "unix:///run/minidocker.sock"
MAX_CONNECTIONS = 512
IDLE_TIMEOUT = 120.0          # seconds a keep-alive connection may sit idle
HEADER_TIMEOUT = 30.0         # seconds to send the rest of a request's head
IO_TIMEOUT = 60.0             # seconds a client may stall in the middle of a body
MAX_HEADER_BYTES = 1 << 20    # as Go's http.Server (DefaultMaxHeaderBytes)
MAX_HEADER_LINE = 64 * 1024

STATUS_TEXT = {
    100: "Continue", 101: "UPGRADED", 200: "OK", 201: "Created", 204: "No Content",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
    413: "Request Entity Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
}


def server_header() -> str:
    return f"minidocker/{__version__} (linux)"


def _common_headers() -> list[tuple[str, str]]:
    """What every answer carries (moby's version middleware adds the same)."""
    return [("Api-Version", router.API_VERSION), ("Docker-Experimental", "false"),
            ("Ostype", "linux"), ("Server", server_header()),
            ("Date", email.utils.formatdate(usegmt=True))]


def load_handlers() -> None:
    """Import every handler module: each registers its routes on import. A module that
    is not there yet (the package grows one area at a time) is skipped."""
    import importlib
    for name in ("system", "containers", "exec", "images", "build", "distribution",
                 "networks", "volumes", "events"):
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{name}":
                raise


def preload_engine() -> None:
    """Import now what every container's monitor needs: the service forks a monitor per
    ``start``, and a fork inherits the modules already loaded (pyroute2 for a bridged
    container costs ~100-270 ms to import, once here instead of at every start). The
    CLI keeps these imports lazy; a long-lived service pays them once."""
    import importlib
    for name in ("minidocker.engine.monitor", "minidocker.engine.bundle",
                 "minidocker.engine.volumes", "minidocker.runtime", "minidocker.network",
                 "minidocker.image.store"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


# ------------------------------------------------------------------------- addresses
def parse_host(host: str) -> tuple[str, object]:
    """``unix:///path`` -> ("unix", path); ``tcp://127.0.0.1:PORT`` -> ("tcp", (ip, port)).
    Anything else is refused: a TCP socket on another address would hand root to the
    network."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidInput(f"invalid host {host}: the socket path must be absolute")
        return "unix", path
    if host.startswith("tcp://"):
        address, _, port = host[len("tcp://"):].rstrip("/").rpartition(":")
        if address not in ("127.0.0.1", "localhost"):
            raise InvalidInput(f"refusing to listen on {host}: the API has no authentication; "
                               "only tcp://127.0.0.1:PORT is allowed")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidInput(f"invalid host {host}: bad port")
        return "tcp", ("127.0.0.1", int(port))
    raise InvalidInput(f"invalid host {host}: use unix:///path or tcp://127.0.0.1:PORT")


def _socket_gid() -> int:
    try:
        return grp.getgrnam("minidocker").gr_gid
    except KeyError:
        return 0


def listen_unix(path: str) -> socket.socket:
    """Bind a unix socket at ``path``, mode 0660 root:minidocker. A stale socket file
    (nobody listening) is replaced; a live one is an error."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise Conflict(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            raise Conflict(f"{path}: another service is already listening there")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)         # created 0660: no window where others could connect
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chown(path, 0, _socket_gid())
    os.chmod(path, 0o660)
    sock.listen(128)
    return sock


def listen_tcp(address) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    return sock


# ------------------------------------------------------------------------- requests
def read_request(rfile, sock) -> Request | None:
    """Parse one request head (RFC 9112: request line, header fields, empty line).
    None when the client closed the connection between requests."""
    line = rfile.readline(MAX_HEADER_LINE + 1)
    while line in (b"\r\n", b"\n"):       # RFC 9112 2.2: ignore empty lines before a request
        line = rfile.readline(MAX_HEADER_LINE + 1)
    if not line:
        return None
    sock.settimeout(HEADER_TIMEOUT)
    if len(line) > MAX_HEADER_LINE:
        raise ApiError(414, "request line too long")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise ApiError(400, "malformed HTTP request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    total = len(line)
    while True:
        line = rfile.readline(MAX_HEADER_LINE + 1)
        total += len(line)
        if not line:
            raise ConnectionResetError("client closed the connection in the request head")
        if total > MAX_HEADER_BYTES or len(line) > MAX_HEADER_LINE:
            raise ApiError(431, "request header fields too large")
        if line in (b"\r\n", b"\n"):
            break
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise ApiError(400, "malformed HTTP header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers and key != "content-length" \
            else value
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = None
    if not chunked and "content-length" in headers:
        text = headers["content-length"]
        if not text.isdigit():
            raise ApiError(400, "invalid Content-Length")
        length = int(text)
    return Request(method.upper(), target, version, headers, Body(rfile, length, chunked), sock)


def dispatch(req: Request):
    """Find the handler and run it; every failure becomes Docker's ``{"message": ...}``."""
    try:
        req.api_version, req.path = router.split_version(req.path)
        handler, req.params = router.match(req.method, req.path)
        if req.header("Expect", "").lower() == "100-continue" and not req.body.done:
            req.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        return handler(req)
    except ApiError as e:
        return error_response(e.status, e.message)
    except NotFound as e:
        return error_response(404, str(e))
    except Conflict as e:
        return error_response(409, str(e))
    except InvalidInput as e:
        return error_response(400, str(e))
    except MinidockerError as e:
        return error_response(500, str(e))
    except ClientGone:
        raise
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        return error_response(500, f"{type(e).__name__}: {e}".splitlines()[0])


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {STATUS_TEXT.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Server:
    """Accept connections on ``host`` and serve each in a thread until :meth:`stop`."""

    def __init__(self, host: str = DEFAULT_HOST, debug: bool = False, out=None):
        self.host = host
        self.kind, self.address = parse_host(host)
        self.debug = debug
        self.out = out or sys.stderr
        self.listener: socket.socket | None = None
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self._stopping = threading.Event()

    # -- lifecycle
    def bind(self) -> None:
        load_handlers()
        preload_engine()
        if self.kind == "unix":
            self.listener = listen_unix(self.address)
        else:
            self.listener = listen_tcp(self.address)

    def serve_forever(self) -> None:
        """Accept until :meth:`stop` (or SIGTERM/SIGINT when called from the main thread)."""
        if self.listener is None:
            self.bind()
        self.listener.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            with self.lock:
                busy = len(self.connections) >= MAX_CONNECTIONS
                if not busy:
                    self.connections.add(conn)
            if busy:
                self._refuse(conn)
                continue
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True,
                             name="api-conn").start()
        self._close()

    def stop(self, *_signal) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            if self.kind == "unix":
                try:
                    os.unlink(self.address)
                except FileNotFoundError:
                    pass
        with self.lock:
            conns = list(self.connections)
        for conn in conns:       # wake the threads blocked on them; they close them
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.02)

    def _refuse(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(1)
            body = b'{"message":"too many connections"}\n'
            conn.sendall(_head(503, [("Content-Type", "application/json"),
                                     ("Content-Length", str(len(body))),
                                     ("Connection", "close")]) + body)
        except OSError:
            pass
        conn.close()

    def log(self, text: str) -> None:
        if self.debug:
            print(text, file=self.out, flush=True)

    # -- one connection
    def _serve_connection(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb", buffering=65536)
        try:
            while not self._stopping.is_set():
                conn.settimeout(IDLE_TIMEOUT)
                try:
                    req = read_request(rfile, conn)
                except ApiError as e:
                    self._send(conn, None, error_response(e.status, e.message), keep=False)
                    return
                if req is None:
                    return
                keep = self._serve_request(conn, rfile, req)
                if not keep:
                    return
        except (OSError, ClientGone, ValueError):
            pass    # the client went away, timed out, or sent garbage: drop it
        finally:
            with self.lock:
                self.connections.discard(conn)
            try:
                rfile.close()
                conn.close()
            except OSError:
                pass

    def _serve_request(self, conn, rfile, req: Request) -> bool:
        """Answer one request; True if the connection may carry another."""
        started = time.monotonic()
        keep = req.version == "HTTP/1.1" and "close" not in req.header("Connection", "").lower()
        # A client that stops sending its body, or stops reading our answer, for this
        # long is dropped; a handler that waits (wait, logs -f) touches no socket.
        conn.settimeout(IO_TIMEOUT)
        response = dispatch(req)
        status = getattr(response, "status", 101)
        if isinstance(response, Hijack):
            self.log(f"{req.method} {req.target} -> hijacked")
            self._hijack(conn, rfile, req, response)
            return False
        if isinstance(response, RawStream):
            self.log(f"{req.method} {req.target} -> {status} (stream)")
            return self._stream(conn, req, response, keep) and self._finish_body(req)
        if not req.body.done:
            # Unread body: drain a little, else close (the next "request" would be data).
            keep = keep and self._finish_body(req)
        self._send(conn, req, response, keep)
        self.log(f"{req.method} {req.target} -> {status} "
                 f"({(time.monotonic() - started) * 1000:.0f} ms)")
        return keep

    @staticmethod
    def _finish_body(req: Request) -> bool:
        try:
            return req.body.drain()
        except (ApiError, OSError):
            return False

    def _send(self, conn, req: Request | None, response: Response, keep: bool) -> None:
        headers = _common_headers() + list(response.headers.items())
        body = response.body
        if response.status not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        headers.append(("Connection", "keep-alive" if keep else "close"))
        if req is not None and req.method == "HEAD" or response.status in (204, 304):
            body = b""
        conn.sendall(_head(response.status, headers) + body)

    def _stream(self, conn, req: Request, response: RawStream, keep: bool) -> bool:
        """Headers now, then each chunk as it comes (chunked for HTTP/1.1)."""
        chunked = req.version == "HTTP/1.1"
        headers = _common_headers() + list(response.headers.items())
        headers.append(("Transfer-Encoding", "chunked") if chunked else ("Connection", "close"))
        try:
            conn.sendall(_head(response.status, headers))
            if req.method == "HEAD":
                if chunked:
                    conn.sendall(b"0\r\n\r\n")
                return keep and chunked
            for data in response.chunks():
                if not data:
                    continue
                if chunked:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    conn.sendall(data)
            if chunked:
                conn.sendall(b"0\r\n\r\n")
            return keep and chunked
        except OSError:
            return False           # the client went away: the finally closes the iterable
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return False           # a stream cannot turn into an error reply: cut it
        finally:
            response.close()

    def _hijack(self, conn, rfile, req: Request, response: Hijack) -> None:
        conn.settimeout(None)     # an interactive session may sit idle for hours
        upgrade = "upgrade" in req.header("Connection", "").lower()
        headers = _common_headers() + list(response.headers.items())
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
            head = _head(101, headers)
        else:
            head = _head(200, headers)
        try:
            conn.sendall(head)
        except OSError:
            if response.abort:
                response.abort()
            return
        try:
            response.fn(rfile, SocketWriter(conn))
        except (ClientGone, OSError):
            pass
        except Exception:
            traceback.print_exc(file=sys.stderr)
        finally:
            # Wake a thread still blocked reading the client's bytes (it holds the
            # buffered reader's lock, which closing the reader would wait for).
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(host: str = DEFAULT_HOST, debug: bool = False, ready=None) -> None:
    """Run the service in this process until SIGTERM/SIGINT."""
    server = Server(host, debug=debug)
    server.bind()
    server.install_signal_handlers()
    if ready:
        ready(server)
    server.serve_forever()
