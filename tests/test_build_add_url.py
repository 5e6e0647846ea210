"""``ADD <URL>``: fetched as Docker's classic builder fetches it, from an HTTP server this
module runs on 127.0.0.1 (no other network is used)."""

from __future__ import annotations

import email.utils
import http.server
import io
import os
import socket
import tarfile
import threading

import pytest

from conftest import needs_root
from helpers_build import bb, build, image_config, image_tree, store, write_context  # noqa: F401

pytestmark = needs_root

NONE = ("--network", "none")
#: what the server says in Last-Modified: the file's mtime in the image
LAST_MODIFIED = 1_600_000_000   # 2020-09-13T12:26:40Z


class Files(http.server.ThreadingHTTPServer):
    """``files`` maps a URL path to (bytes, Last-Modified seconds or None); anything
    else is a 404. ``drop`` names paths whose body stops half-way (a reset)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[bytes, int | None]] = {}
        self.drop: set[str] = set()
        self.gets: list[str] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.server.gets.append(self.path)
        path = self.path.split("?", 1)[0]
        if path not in self.server.files:
            self.send_error(404)
            return
        body, modified = self.server.files[path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if modified is not None:
            self.send_header("Last-Modified", email.utils.formatdate(modified, usegmt=True))
        self.end_headers()
        if path in self.server.drop:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = Files()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


def _stat_in_image(root, ref, path):
    from minidocker.build.files import ImageView
    s = store(root)
    return os.lstat(ImageView(s.layer_dirs(s.resolve(ref))).host_path(path))


def test_add_url_names_modes_mtime_and_no_extraction(bb, web, tmp_path):
    web.files["/dl/hello.txt"] = (b"hello from the web\n", LAST_MODIFIED)
    web.files["/dl/bundle.tar"] = (_tar_bytes(), None)
    web.files["/dl/dir/"] = (b"index\n", LAST_MODIFIED)
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "FROM busybox\n"
        f"ADD {web.url('/dl/hello.txt')} /into/\n"              # a directory: the URL's name
        f"ADD {web.url('/dl/hello.txt?token=1')} /renamed.txt\n"  # not a directory: dest itself
        f"ADD {web.url('/dl/bundle.tar')} /archives/\n"          # an archive stays one file
        f"ADD --chown=7:8 {web.url('/dl/dir/')} /owned/\n"       # a trailing / is not the name
        f"ADD --chmod=644 {web.url('/dl/hello.txt')} /readable\n"})
    build(bb, ctx, "-t", "fetched", *NONE)
    tree = image_tree(bb, "fetched")
    assert tree["into/hello.txt"] == ("file", "0o600", 0, 0, "hello from the web\n")
    assert tree["renamed.txt"][:4] == ("file", "0o600", 0, 0)
    assert tree["archives/bundle.tar"][:2] == ("file", "0o600")
    assert "archives/inside.txt" not in tree
    assert tree["owned/dir"] == ("file", "0o600", 7, 8, "index\n")
    assert tree["readable"][:2] == ("file", "0o644")
    assert _stat_in_image(bb, "fetched", "into/hello.txt").st_mtime == LAST_MODIFIED
    assert _stat_in_image(bb, "fetched", "archives/bundle.tar").st_mtime == 0  # no Last-Modified


def test_add_url_cache_follows_the_downloaded_bytes(bb, web, tmp_path):
    web.files["/v.txt"] = (b"version 1\n", LAST_MODIFIED)
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        f"FROM busybox\nADD {web.url('/v.txt')} /v.txt\nRUN cat /v.txt > /copy\n"})
    first = build(bb, ctx, "-t", "cached", *NONE)
    assert "Using cache" not in first.stdout
    # the same bytes (a new Last-Modified does not count, as in Docker): from the cache,
    # though downloaded again to know it
    web.files["/v.txt"] = (b"version 1\n", LAST_MODIFIED + 3600)
    again = build(bb, ctx, "-t", "cached", *NONE)
    assert again.stdout.count(" ---> Using cache") == 2
    assert web.gets.count("/v.txt") == 2
    # new bytes: the ADD and everything after it run again
    web.files["/v.txt"] = (b"version 2\n", LAST_MODIFIED)
    changed = build(bb, ctx, "-t", "cached", *NONE)
    assert " ---> Using cache" not in changed.stdout
    assert image_tree(bb, "cached")["copy"][4] == "version 2\n"


@pytest.mark.parametrize("case", ["404", "refused", "reset", "no name", "copy"])
def test_add_url_failures_stop_the_build_with_one_line(bb, web, tmp_path, case):
    web.files["/half.bin"] = (b"x" * 100_000, None)
    web.drop.add("/half.bin")
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/f.txt"
    line, message = {
        "404": (f"ADD {web.url('/nope.txt')} /x", f"ADD failed: failed to GET {web.url('/nope.txt')} "
                                                  "with status 404 Not Found"),
        "refused": (f"ADD {closed} /x", f'ADD failed: Get "{closed}": connect: connection refused'),
        "reset": (f"ADD {web.url('/half.bin')} /x",
                  f'ADD failed: Get "{web.url("/half.bin")}": unexpected EOF '
                  "(the body ended after 50000 of 100000 bytes)"),
        "no name": (f"ADD {web.url('/')} /x/", f"ADD failed: cannot determine filename from url: "
                                               f"{web.url('/')}"),
        "copy": (f"COPY {web.url('/f.txt')} /x", "source can't be a URL for COPY"),
    }[case]
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM busybox\nRUN echo before\n{line}\n"})
    images_before = sorted(store(bb).image_ids())
    r = build(bb, ctx, "-t", "broken", *NONE, ok=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"minidocker: {ctx}/Dockerfile:3: {message}"), r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert sorted(store(bb).image_ids()) == images_before     # the RUN's image taken back too
    assert os.listdir(os.path.join(bb, "tmp")) == []           # no download left behind
    assert "broken:latest" not in dict(store(bb).repositories())
