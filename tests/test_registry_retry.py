"""The registry client against a registry having a bad day: the embedded registry, made
to answer 503, hang up, or cut a blob short on a schedule. Requests that may be sent
again are, a few times; a blob cut short is resumed with ``Range`` (or skipped ahead
when the server ignores ranges); the digest of the whole blob is still checked."""

from __future__ import annotations

import io
import os
import socket
import threading

import pytest

from conftest import needs_root
from helpers_registry import embedded, make_image, scratch_files, store_snapshot

pytestmark = needs_root


@pytest.fixture(autouse=True)
def quick_retries(tmp_path, monkeypatch):
    """Retries wait milliseconds here, not seconds; credentials stay in the test's dir."""
    from minidocker.registry import transport
    monkeypatch.setattr(transport, "RETRY_DELAYS", (0.01, 0.02, 0.04))
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(tmp_path / "config.json"))


class Schedule:
    """Faults to serve, in order, per request kind: ``(METHOD, kind)`` or, for a blob,
    ``("GET", "blob", digest)``. ``ranges=False`` makes the server ignore ``Range``.
    ``log`` lists (method, kind, Range header, fault) for every request."""

    def __init__(self):
        self.faults: dict[tuple, list[str]] = {}
        self.log: list[tuple] = []
        self.ranges = True
        self.lock = threading.Lock()

    def add(self, key: tuple, *faults: str) -> None:
        self.faults.setdefault(key, []).extend(faults)

    def take(self, key: tuple) -> str | None:
        with self.lock:
            queue = self.faults.get(key)
            return queue.pop(0) if queue else None

    def count(self, method: str, kind: str) -> int:
        return sum(1 for m, k, _r, _f in self.log if (m, k) == (method, kind))


def _kind(path: str) -> str:
    path = path.split("?", 1)[0]
    if path.rstrip("/") == "/v2":
        return "ping"
    if "/blobs/uploads" in path:
        return "upload"
    if "/blobs/" in path:
        return "blob"
    return "manifest" if "/manifests/" in path else "other"


def flaky(schedule: Schedule):
    from minidocker.registry.server import RegistryError, RegistryHandler

    class Flaky(RegistryHandler):
        def _dispatch(self):
            kind = _kind(self.path)
            if kind == "blob" and self.command == "GET":
                return super()._dispatch()          # blob_get below has the say
            fault = schedule.take((self.command, kind))
            schedule.log.append((self.command, kind, self.headers.get("Range"), fault))
            if not self._fault(fault):
                super()._dispatch()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def _fault(self, fault) -> bool:
            if fault == "503":
                self._body_consumed = self._answered = False
                self._send_error(RegistryError(503, "UNAVAILABLE", "service unavailable"))
                return True
            if fault == "reset":                     # hang up without a word
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return True
            return False

        def blob_get(self, name, digest):
            fault = schedule.take(("GET", "blob", digest))
            schedule.log.append(("GET", "blob", self.headers.get("Range"), fault))
            if not schedule.ranges:
                del self.headers["Range"]
            if self._fault(fault):
                return
            if fault not in ("cut", "corrupt"):
                return super().blob_get(name, digest)
            with open(self.server.storage.blob_path(digest), "rb") as f:
                data = f.read()
            start = 0
            rng = self.headers.get("Range")
            if rng:
                start = int(rng.removeprefix("bytes=").split("-")[0])
            rest = data[start:]
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            if fault == "corrupt":
                self.wfile.write(bytes(b ^ 0x55 for b in rest))
                return
            self.wfile.write(rest[:len(rest) // 2])  # half of what was promised, then gone
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    return Flaky


def new_store(tmp_path, name):
    from minidocker.image.store import Store
    root = tmp_path / name
    root.mkdir()
    return Store(str(root))


def pull(store, ref):
    from minidocker.registry import client
    out = io.StringIO()
    return client.pull(ref, store, out), out.getvalue()


def push(store, ref):
    from minidocker.registry import client
    return client.push(ref, store, io.StringIO())


@pytest.fixture
def pushed(tmp_path, busybox_rootfs):
    """An embedded registry holding an image with a big (600 kB) last layer; yields
    (registry, ref, image id, big layer's digest, schedule)."""
    from minidocker.registry.server import RegistryHandler
    upstream = new_store(tmp_path, "upstream")
    image_id = make_image(upstream, "x:1", busybox_rootfs,
                          [{"etc/big": os.urandom(300_000).hex()}], compression=None)
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/app:v1"
        upstream.tag(image_id, ref)
        push(upstream, ref)
        big = upstream.image_manifest(image_id)["layers"][-1]["digest"]
        schedule = Schedule()
        reg.server.RequestHandlerClass = flaky(schedule)
        try:
            yield reg, ref, image_id, big, schedule
        finally:
            reg.server.RequestHandlerClass = RegistryHandler


def test_pull_rides_out_503s_resets_and_cut_blobs(pushed, tmp_path):
    reg, ref, image_id, big, schedule = pushed
    schedule.add(("GET", "ping"), "503", "503")
    schedule.add(("GET", "manifest"), "reset")
    schedule.add(("GET", "blob", big), "cut", "503", "cut")
    local = new_store(tmp_path, "local")
    pulled, out = pull(local, ref)
    assert pulled == image_id
    ranges = [r for m, k, r, f in schedule.log if k == "blob" and r]
    # resumed twice where it stopped, each time further on (a 503 in between retried)
    assert len(ranges) == 3 and all(r.startswith("bytes=") for r in ranges)
    offsets = [int(r[6:].rstrip("-")) for r in ranges]
    assert 0 < offsets[0] == offsets[1] < offsets[2]
    assert "Retrying in 1 second" in out
    assert schedule.count("GET", "ping") == 3 and schedule.count("GET", "manifest") == 2


def test_a_server_without_ranges_is_read_again_and_skipped(pushed, tmp_path):
    reg, ref, image_id, big, schedule = pushed
    schedule.ranges = False
    schedule.add(("GET", "blob", big), "cut")
    local = new_store(tmp_path, "local")
    assert pull(local, ref)[0] == image_id
    assert [r for m, k, r, f in schedule.log if k == "blob" and r]   # it asked...
    assert local.has_blob(big)                                        # ...and got it whole


def test_the_whole_blob_is_still_verified_after_a_resume(pushed, tmp_path, busybox_rootfs):
    reg, ref, image_id, big, schedule = pushed
    schedule.add(("GET", "blob", big), "cut", "corrupt")   # the rest comes back wrong
    local = new_store(tmp_path, "local")
    make_image(local, "base:latest", busybox_rootfs)
    before = store_snapshot(local.root)
    from minidocker.errors import MinidockerError
    with pytest.raises(MinidockerError, match="does not match its digest"):
        pull(local, ref)
    assert store_snapshot(local.root) == before
    assert scratch_files(local.root) == []


@pytest.mark.parametrize("key, faults, message", [
    (("GET", "manifest"), ["503"] * 9, "manifests/v1: unavailable: service unavailable"),
    (("GET", "manifest"), ["reset"] * 9, "closed the connection without answering"),
    (None, ["cut"] * 9, "connection lost while downloading"),
])
def test_a_few_tries_then_one_line(pushed, tmp_path, busybox_rootfs, key, faults, message):
    from minidocker.errors import MinidockerError
    from minidocker.registry import transport
    reg, ref, image_id, big, schedule = pushed
    schedule.add(key or ("GET", "blob", big), *faults)
    local = new_store(tmp_path, "local")
    make_image(local, "base:latest", busybox_rootfs)
    before = store_snapshot(local.root)
    with pytest.raises(MinidockerError, match=message) as err:
        pull(local, ref)
    assert "\n" not in str(err.value)
    tries = len(transport.RETRY_DELAYS) + 1
    if key:
        assert schedule.count(*key) == tries
    else:
        assert sum(1 for m, k, r, f in schedule.log if f == "cut") == tries
    assert store_snapshot(local.root) == before
    assert scratch_files(local.root) == []


def test_push_rides_out_503s_and_resets(tmp_path, busybox_rootfs):
    from minidocker.registry.server import RegistryHandler
    source = new_store(tmp_path, "source")
    image_id = make_image(source, "y:1", busybox_rootfs, [{"etc/motd": "hello\n"}])
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/y:1"
        source.tag(image_id, ref)
        schedule = Schedule()
        schedule.add(("GET", "ping"), "503")
        schedule.add(("HEAD", "blob"), "503")
        schedule.add(("POST", "upload"), "reset")
        schedule.add(("PUT", "upload"), "503")
        schedule.add(("PUT", "manifest"), "503", "reset")
        reg.server.RequestHandlerClass = flaky(schedule)
        try:
            push(source, ref)
        finally:
            reg.server.RequestHandlerClass = RegistryHandler
        assert schedule.count("PUT", "manifest") == 3
        fresh = new_store(tmp_path, "fresh")
        assert pull(fresh, ref)[0] == image_id
