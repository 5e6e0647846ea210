"""A small HTTP/1.1 layer: what the Docker Engine API needs, and nothing it does not.

Why not :mod:`http.server`? The Engine API bends HTTP in three ways that the standard
library's server does not help with:

* **hijacking** (``POST /containers/{id}/attach``, ``POST /exec/{id}/start``): the
  client sends ``Connection: Upgrade`` / ``Upgrade: tcp``, the daemon answers
  ``101 UPGRADED``, and from then on the connection is a raw byte pipe in both
  directions (the container's stdin one way, its output the other);
* **streams** whose headers go out at once and whose body comes much later or never
  ends (``/wait`` answers when the container exits; ``/events``, ``logs?follow=1``,
  ``stats``, pull progress are newline-delimited JSON or framed bytes, sent with
  ``Transfer-Encoding: chunked``, RFC 9112 section 7.1);
* **bodies** that are sometimes a tar stream of gigabytes (``PUT .../archive``,
  ``POST /build``) and sometimes a small JSON document that must be refused when huge
  or malformed.

So this module has: :class:`Request` (the parsed request line, headers, query and a
bounded body reader), the response kinds a handler returns (:func:`json_response`,
:func:`no_content`, :class:`JsonStream`, :class:`RawStream`, :class:`Hijack`), and
:class:`ApiError`. Reading and writing them on a socket is the job of
:mod:`minidocker.api.server`.
"""

from __future__ import annotations

import base64
import json
import socket
from urllib.parse import parse_qs, unquote

from ..errors import InvalidInput

#: A JSON request body larger than this is refused with 413 (a container config is a
#: few kilobytes; this is only a guard against a client sending gigabytes).
MAX_JSON_BODY = 8 * 1024 * 1024

#: Docker's media type for attach/exec/logs bytes (API 1.41 uses it for both the tty
#: and the multiplexed form).
RAW_STREAM = "application/vnd.docker.raw-stream"


class ApiError(Exception):
    """An HTTP error with Docker's body ``{"message": ...}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client closed the connection (or reset it) while we were talking to it."""


# ----------------------------------------------------------------------------- bodies
class Body:
    """The request body as a file-like reader (``read``, ``read1``, ``readinto``),
    whatever its framing: ``Content-Length`` bytes, or ``Transfer-Encoding: chunked``
    (chunks of ``<hex size>\\r\\n<data>\\r\\n``, ending with a zero-size chunk).

    A body that ends early (the client closed the connection in the middle) raises
    :class:`ApiError` 400 instead of returning short data, so that an upload is never
    taken for complete when it is not.
    """

    def __init__(self, rfile, length: int | None, chunked: bool):
        self._rfile = rfile
        self._left = (length or 0) if not chunked else 0   # bytes left in this chunk / body
        self._chunked = chunked
        self._done = (not chunked) and not length
        self.announced = None if chunked else length
        self.consumed = 0
        self.failed = False         # a framing error: the connection cannot be reused

    # -- framing
    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise ApiError(400, "unexpected EOF in chunked request body")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ApiError(400, "malformed chunked request body") from None
        if size < 0:
            raise ApiError(400, "malformed chunked request body")
        if size == 0:
            # trailers, up to an empty line
            while True:
                trailer = self._rfile.readline(8192)
                if not trailer.endswith(b"\n"):
                    raise ApiError(400, "unexpected EOF in chunked request body")
                if trailer in (b"\r\n", b"\n"):
                    break
            self._done = True
        self._left = size

    def _end_chunk(self) -> None:
        if self._rfile.read(2) not in (b"\r\n",):
            raise ApiError(400, "malformed chunked request body")

    def read(self, n: int = -1) -> bytes:
        try:
            return self._read(n)
        except ApiError:
            self.failed = True
            raise

    def _read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                part = self.read(65536)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        out = bytearray()
        while len(out) < n and not self._done:
            if self._left == 0:
                if not self._chunked:
                    self._done = True
                    break
                self._next_chunk()
                continue
            data = self._rfile.read1(min(n - len(out), self._left))
            if not data:
                raise ApiError(400, "unexpected EOF: the request body is shorter than announced")
            out += data
            self._left -= len(data)
            self.consumed += len(data)
            if self._chunked and self._left == 0:
                self._end_chunk()
            if out:
                break   # like read1: whatever is there, at most n bytes
        return bytes(out)

    read1 = read

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def read_all(self, limit: int) -> bytes:
        """The whole body, refusing (413) one longer than ``limit`` bytes."""
        parts, total = [], 0
        while True:
            part = self.read(65536)
            if not part:
                return b"".join(parts)
            total += len(part)
            if total > limit:
                raise ApiError(413, f"request body too large (more than {limit} bytes)")
            parts.append(part)

    @property
    def done(self) -> bool:
        return self._done

    def drain(self, limit: int = 1 << 20) -> bool:
        """Read and drop what the handler left unread, so that the connection can serve
        the next request; False (close the connection) if that is more than ``limit``."""
        if self.failed or (not self._chunked and self._left > limit):
            return False
        total = 0
        while not self._done:
            part = self.read(65536)
            if not part:
                break
            total += len(part)
            if total > limit:
                return False
        return True


# ----------------------------------------------------------------------------- request
def _bool(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise ApiError(400, f"invalid boolean value for {name}: {text!r}")


class Request:
    """One HTTP request, as a handler sees it."""

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str],
                 body: Body, sock: socket.socket | None = None):
        self.method = method
        self.target = target
        self.version = version              # "HTTP/1.1"
        self.headers = headers              # names lower-cased
        self.body = body
        self.sock = sock
        raw_path, _, query = target.partition("?")
        self.raw_path = raw_path
        self.path = unquote(raw_path)       # after the version prefix is taken off: see router
        self.query: dict[str, list[str]] = parse_qs(query, keep_blank_values=True)
        self.params: dict[str, str] = {}
        self.api_version: tuple[int, int] = (1, 41)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    # -- query
    def query_str(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def query_bool(self, name: str, default: bool = False) -> bool:
        """``1/0/true/false`` in any case (Docker's ``httputils.BoolValue``)."""
        value = self.query_str(name)
        return default if value is None else _bool(value, name)

    def query_int(self, name: str, default: int | None = None) -> int | None:
        value = self.query_str(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {value!r} is not an integer") from None

    def query_filters(self) -> dict[str, list[str]]:
        """The ``filters`` query parameter, JSON in either of Docker's shapes:
        ``{"label": ["a=b"]}`` (new) or ``{"label": {"a=b": true}}`` (old)."""
        text = self.query_str("filters")
        if not text:
            return {}
        try:
            raw = json.loads(text)
        except ValueError:
            raise ApiError(400, f"invalid filter: {text}") from None
        if not isinstance(raw, dict):
            raise ApiError(400, f"invalid filter: {text}")
        out: dict[str, list[str]] = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                out[key] = [k for k, on in value.items() if on]
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = list(value)
            elif isinstance(value, str):
                out[key] = [value]
            else:
                raise ApiError(400, f"invalid filter: {text}")
        return out

    # -- body
    def json(self, default=None):
        """The body parsed as JSON; ``default`` when there is none. Malformed -> 400."""
        if self.body.announced is not None and self.body.announced > MAX_JSON_BODY:
            raise ApiError(413, f"request body too large (more than {MAX_JSON_BODY} bytes)")
        data = self.body.read_all(MAX_JSON_BODY)
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"invalid JSON: {e}") from None

    def registry_auth(self) -> dict:
        """``X-Registry-Auth``: base64url of a JSON AuthConfig (username, password,
        serveraddress, identitytoken); {} when absent."""
        value = self.header("X-Registry-Auth")
        if not value:
            return {}
        try:
            padded = value + "=" * (-len(value) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, TypeError):
            raise ApiError(400, "invalid X-Registry-Auth header") from None
        return data if isinstance(data, dict) else {}

    def client_gone(self) -> bool:
        """True once the client has closed the connection (for handlers that wait long).

        ``poll`` with no timeout: ``POLLRDHUP``/``POLLHUP`` mean the peer closed; readable
        data is peeked at, and an empty peek is a close too. (``recv`` with
        ``MSG_DONTWAIT`` is not enough: on a socket with a timeout Python waits for
        readability first.)"""
        if self.sock is None:
            return False
        import select
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLRDHUP)
        events = poller.poll(0)
        if not events:
            return False
        flags = events[0][1]
        if flags & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL):
            return True
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


# --------------------------------------------------------------------------- responses
class Response:
    """A complete response: status, headers, body bytes."""

    def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None,
                 content_type: str | None = None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


def json_response(obj, status: int = 200, headers: dict | None = None) -> Response:
    body = (json.dumps(obj) + "\n").encode()
    return Response(status, body, headers, "application/json")


def text_response(text: str, status: int = 200, headers: dict | None = None) -> Response:
    return Response(status, text.encode(), headers, "text/plain; charset=utf-8")


def no_content(status: int = 204) -> Response:
    return Response(status)


def error_response(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


class RawStream:
    """A streamed body of bytes (``Transfer-Encoding: chunked``): the headers go out at
    once, each item of ``iterable`` when it comes. When the client goes away the
    iterable is closed (a generator gets ``GeneratorExit`` at its ``yield``)."""

    def __init__(self, iterable, content_type: str = "application/octet-stream",
                 status: int = 200, headers: dict | None = None):
        self.iterable = iterable
        self.status = status
        self.headers = dict(headers or {})
        self.headers.setdefault("Content-Type", content_type)

    def chunks(self):
        for item in self.iterable:
            yield item

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close:
            close()


class JsonStream(RawStream):
    """Newline-delimited JSON, one object per item (pull progress, events, stats,
    ``/wait``'s one late answer)."""

    def __init__(self, iterable, status: int = 200, headers: dict | None = None):
        super().__init__(iterable, "application/json", status, headers)

    def chunks(self):
        for item in self.iterable:
            yield (json.dumps(item) + "\n").encode()


class SocketWriter:
    """The writing half of a hijacked connection."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.closed = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise ClientGone(str(e)) from None

    def flush(self) -> None:
        pass

    def close_write(self) -> None:
        """Half-close: the client reads end-of-file, and may still send to us."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Hijack:
    """Take the connection over: the server answers ``101 UPGRADED`` (``200 OK`` for a
    client that did not ask to upgrade), then calls ``fn(reader, writer)`` with the raw
    connection: ``reader`` a buffered binary reader (``read1``; b"" at end-of-file),
    ``writer`` a :class:`SocketWriter`. The connection is closed when ``fn`` returns.

    ``prepare`` (optional) runs before the answer is sent, so that it can still fail
    with a proper HTTP error (no such container...)."""

    def __init__(self, fn, content_type: str = RAW_STREAM, headers: dict | None = None,
                 abort=None):
        self.fn = fn
        self.abort = abort          # called instead of fn when the answer cannot be sent
        self.headers = dict(headers or {})
        self.headers.setdefault("Content-Type", content_type)


def check_type(value, kind, name: str):
    """A JSON field of the wrong type -> 400, with the field's name (Docker's decoder
    says ``json: cannot unmarshal string into Go struct field ... of type ...``)."""
    if value is None:
        return value
    if kind is int and isinstance(value, bool):
        raise ApiError(400, f"json: cannot unmarshal bool into field {name} of type int")
    if not isinstance(value, kind):
        got = type(value).__name__
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        names = {"str": "string", "int": "number", "float": "number", "bool": "bool",
                 "list": "array", "dict": "object", "NoneType": "null"}
        raise ApiError(400, f"json: cannot unmarshal {names.get(got, got)} into field {name} "
                            f"of type {names.get(want, want)}")
    return value


__all__ = ["ApiError", "Body", "ClientGone", "Hijack", "InvalidInput", "JsonStream",
           "RAW_STREAM", "RawStream", "Request", "Response", "SocketWriter", "check_type",
           "error_response", "json_response", "no_content", "text_response"]
