"""minidocker push / pull against Debian's Distribution registry and the embedded one:
the round trip, skipped layers, mounts, chunked uploads, auth, and lying servers."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import needs_root
from helpers_registry import (embedded, make_image, minidocker, registry_of_kind,
                              scratch_files, store_snapshot)

pytestmark = needs_root

BOTH = ["distribution", "embedded"]


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """Credentials go to a config.json of the test's own, never ~/.minidocker."""
    path = tmp_path / "minidocker-config.json"
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(path))
    return path


def new_store(tmp_path, name):
    from minidocker.image.store import Store
    root = tmp_path / name
    root.mkdir()
    return Store(str(root))


@pytest.fixture
def source(tmp_path, busybox_rootfs):
    """A store holding busybox plus a layer with /etc/motd, not yet tagged for a registry."""
    store = new_store(tmp_path, "source")
    image_id = make_image(store, "app:latest", busybox_rootfs,
                          [{"etc/motd": "pushed by minidocker\n"}], cmd=["cat", "/etc/motd"])
    return store, image_id


def push(store, ref, **kw):
    from minidocker.registry import client
    out = io.StringIO()
    digest = client.push(ref, store, out, **kw)
    return digest, out.getvalue()


def pull(store, ref):
    from minidocker.registry import client
    out = io.StringIO()
    image_id = client.pull(ref, store, out)
    return image_id, out.getvalue()


def layer_lines(output):
    return [line for line in output.splitlines() if line[:12].isalnum() and line[12:14] == ": "]


# =========================================================================== round trip
@pytest.mark.parametrize("kind", BOTH)
def test_push_then_pull_on_an_empty_root_then_second_push_skips_all(kind, tmp_path, source):
    store, image_id = source
    with registry_of_kind(kind, tmp_path) as reg:
        ref = f"{reg.host}/john1/cowsay:v1"
        store.tag(image_id, ref)
        digest, out = push(store, ref)
        lines = out.splitlines()
        assert lines[0] == f"The push refers to repository [{reg.host}/john1/cowsay]"
        assert sorted(line.split(": ", 1)[1] for line in layer_lines(out)
                      if not line.endswith("Preparing")) == ["Pushed", "Pushed"]
        assert lines[-1].startswith(f"v1: digest: {digest} size: ")

        _, again = push(store, ref)
        finals = [line.split(": ", 1)[1] for line in layer_lines(again) if not line.endswith("Preparing")]
        assert finals == ["Layer already exists"] * 2

        fresh = new_store(tmp_path, "fresh")
        pulled, out = pull(fresh, ref)
        assert pulled == image_id                         # same config bytes, same id
        assert f"Digest: {digest}" in out
        assert f"Status: Downloaded newer image for {ref}" in out
        assert fresh.resolve(ref) == image_id
        assert fresh.image_config(pulled)["config"]["Cmd"] == ["cat", "/etc/motd"]
        motd = os.path.join(fresh.layer_dirs(pulled)[-1], "etc", "motd")
        assert open(motd).read() == "pushed by minidocker\n"

        _, out = pull(fresh, ref)
        assert f"Status: Image is up to date for {ref}" in out


def test_cli_push_pull_output_and_errors(tmp_path, source):
    store, image_id = source
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/app"
        r = minidocker("tag", "app", ref, root=store.root)
        if r.returncode != 0:                                # tag is the images area's
            store.tag(image_id, ref)
        r = minidocker("push", ref, root=store.root)
        assert r.returncode == 0, r.stderr
        assert "Pushed" in r.stdout and "latest: digest: sha256:" in r.stdout
        root = str(tmp_path / "cli-pull")
        r = minidocker("pull", ref, root=root)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "Using default tag: latest"
        assert lines[1] == "latest: Pulling from lab/app"
        assert lines[-1] == f"{ref}:latest"
        assert any(line.endswith(": Pull complete") for line in lines)

        r = minidocker("pull", f"{reg.host}/lab/app:nope", root=root)
        assert r.returncode == 125
        assert r.stderr.strip() == (f"minidocker: manifest for {reg.host}/lab/app:nope not found: "
                                    "manifest unknown: manifest unknown")
        r = minidocker("push", f"{reg.host}/lab/missing:v1", root=root)
        assert r.returncode == 125
        assert r.stderr.strip() == ("minidocker: An image does not exist locally with the tag: "
                                    f"{reg.host}/lab/missing")


def test_pull_reports_present_layers_as_already_exists(tmp_path, source, busybox_rootfs):
    store, image_id = source
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/app:v1"
        store.tag(image_id, ref)
        push(store, ref)
        local = new_store(tmp_path, "local")
        make_image(local, "base:latest", busybox_rootfs)       # same busybox layer
        base_layer = store.image_manifest(image_id)["layers"][0]["digest"]
        _, out = pull(local, ref)
        assert f"{base_layer[7:19]}: Already exists" in out
        assert len([x for x in layer_lines(out) if x.endswith("Pull complete")]) == 1


@pytest.mark.parametrize("kind", BOTH)
def test_push_to_another_repository_mounts_the_layers(kind, tmp_path, source):
    store, image_id = source
    with registry_of_kind(kind, tmp_path) as reg:
        store.tag(image_id, f"{reg.host}/library/base:v1")
        push(store, f"{reg.host}/library/base:v1")
        store.tag(image_id, f"{reg.host}/john1/app:v1")
        _, out = push(store, f"{reg.host}/john1/app:v1")
        finals = [line.split(": ", 1)[1] for line in layer_lines(out) if not line.endswith("Preparing")]
        assert finals == ["Mounted from library/base"] * 2


def test_chunked_push_uses_patch_requests(tmp_path, source):
    from minidocker.registry.server import RegistryHandler

    patches = []

    class Counting(RegistryHandler):
        def upload_patch(self, name, uuid):
            patches.append(self.headers.get("Content-Range"))
            return super().upload_patch(name, uuid)

    store, image_id = source
    with embedded(tmp_path, handler=Counting) as reg:
        ref = f"{reg.host}/lab/chunked:v1"
        store.tag(image_id, ref)
        size = store.image_manifest(image_id)["layers"][0]["size"]
        push(store, ref, chunk_size=256 * 1024)
        assert len(patches) >= size // (256 * 1024)
        assert patches[0] == f"0-{256 * 1024 - 1}"
        fresh = new_store(tmp_path, "fresh")
        assert pull(fresh, ref)[0] == image_id


def test_pull_by_digest(tmp_path, source):
    store, image_id = source
    with embedded(tmp_path) as reg:
        store.tag(image_id, f"{reg.host}/lab/app:v1")
        digest, _ = push(store, f"{reg.host}/lab/app:v1")
        fresh = new_store(tmp_path, "fresh")
        pulled, out = pull(fresh, f"{reg.host}/lab/app@{digest}")
        assert pulled == image_id
        assert out.splitlines()[0] == f"{digest}: Pulling from lab/app"


# =========================================================================== auth
@pytest.mark.parametrize("kind", BOTH)
def test_basic_auth_login_push_pull_logout(kind, tmp_path, source, private_config):
    from minidocker.registry.server import bcrypt_hash
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt_hash('s3cret', 4)}\n")
    store, image_id = source
    with registry_of_kind(kind, tmp_path, htpasswd=str(htpasswd)) as reg:
        ref = f"{reg.host}/lab/secret:v1"
        store.tag(image_id, ref)
        r = minidocker("push", ref, root=store.root)
        assert r.returncode == 125
        assert "unauthorized: authentication required" in r.stderr
        r = minidocker("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n")
        assert r.returncode == 125
        assert r.stderr.strip() == f"minidocker: {reg.host}: unauthorized: incorrect username or password"
        assert not private_config.exists()
        r = minidocker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "Login Succeeded"
        saved = json.loads(private_config.read_text())["auths"][reg.host]["auth"]
        assert base64.b64decode(saved) == b"alice:s3cret"
        assert oct(os.stat(private_config).st_mode & 0o777) == "0o600"
        push(store, ref)
        fresh = new_store(tmp_path, "fresh")
        assert pull(fresh, ref)[0] == image_id
        r = minidocker("logout", reg.host)
        assert r.stdout.strip() == f"Removing login credentials for {reg.host}"
        assert json.loads(private_config.read_text())["auths"] == {}


class TokenServer:
    """A tiny bearer-token server (Docker Hub's auth.docker.io in miniature): GET
    /token?service=&scope=... with Basic alice:s3cret -> {"token": ...} for the scopes."""

    def __init__(self):
        self.tokens: dict[str, set[str]] = {}
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                outer.requests.append(query)
                good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
                if self.headers.get("Authorization") != good:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = secrets.token_hex(16)
                outer.tokens[token] = set(query.get("scope", []))
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def bearer_handler(tokens: TokenServer):
    """The embedded registry, but asking for bearer tokens with the right scope."""
    import re
    from minidocker.registry.server import RegistryError, RegistryHandler

    class Bearer(RegistryHandler):
        def _authenticate(self):
            m = re.match(r"^/v2/(.+?)/(?:blobs|manifests|tags)/", self.path)
            action = "pull" if self.command in ("GET", "HEAD") else "push"
            scope = f"repository:{m.group(1)}:{action}" if m else None
            header = self.headers.get("Authorization", "")
            granted = tokens.tokens.get(header[7:]) if header.startswith("Bearer ") else None
            if granted is not None:
                if scope is None:
                    return
                name, want = scope.rsplit(":", 1)
                for g in granted:
                    g_name, _, g_actions = g.rpartition(":")
                    if g_name == name and want in g_actions.split(","):
                        return
            challenge = f'Bearer realm="{tokens.realm}",service="test-registry"'
            if scope:
                challenge += f',scope="{scope}"'
            raise RegistryError(401, "UNAUTHORIZED", "authentication required",
                                headers={"WWW-Authenticate": challenge})

    return Bearer


def test_bearer_token_flow(tmp_path, source, private_config):
    tokens = TokenServer()
    store, image_id = source
    try:
        with embedded(tmp_path, handler=bearer_handler(tokens)) as reg:
            ref = f"{reg.host}/john1/cowsay:v1"
            store.tag(image_id, ref)
            from minidocker.errors import MinidockerError
            with pytest.raises(MinidockerError, match="authentication required"):
                push(store, ref)                           # anonymous: token refused
            r = minidocker("login", "-u", "alice", "-p", "wrong", reg.host)
            assert r.returncode == 125 and "incorrect username or password" in r.stderr
            r = minidocker("login", "-u", "alice", "-p", "s3cret", reg.host)
            assert r.returncode == 0, r.stderr
            assert "WARNING! Using --password via the CLI is insecure" in r.stderr
            push(store, ref)
            assert any(q.get("scope") == ["repository:john1/cowsay:pull,push"] and
                       q.get("service") == ["test-registry"] for q in tokens.requests)
            fresh = new_store(tmp_path, "fresh")
            assert pull(fresh, ref)[0] == image_id
            assert any(q.get("scope") == ["repository:john1/cowsay:pull"] for q in tokens.requests)
    finally:
        tokens.close()


# =========================================================================== lying servers
def faulty_handler(fault: str, target: str, served: list):
    """The embedded registry, misbehaving on the blob (or manifest) ``target``;
    ``served`` collects the blobs it served well."""
    from minidocker.registry.server import RegistryHandler

    class Faulty(RegistryHandler):
        def blob_get(self, name, digest):
            if self.command != "GET" or digest != target:
                served.append(digest)
                return super().blob_get(name, digest)
            time.sleep(0.3)              # let the other layers land in the store first
            with open(self.server.storage.blob_path(digest), "rb") as f:
                data = f.read()
            if fault == "500":
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "drop":           # hang up before answering
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "corrupt":
                data = data[:-100] + bytes(b ^ 0xFF for b in data[-100:])
            if fault == "truncated":
                data = data[:len(data) // 2]
            length = len(data) * 2 if fault == "midstream" else len(data)
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(data)
            if fault == "midstream":     # promised more, then the connection dies
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

        def manifest_get(self, name, ref):
            if fault != "notjson":
                return super().manifest_get(name, ref)
            body = b"<html>502 Bad Gateway</html>"
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Faulty


@pytest.mark.parametrize("fault,message", [
    ("corrupt", "content does not match its digest"),
    ("truncated", "truncated"),
    ("midstream", "connection lost while downloading"),
    ("500", "500 Internal Server Error"),
    ("drop", "closed the connection without answering"),
    ("notjson", "not valid JSON"),
])
def test_bad_server_leaves_the_store_as_it_was(fault, message, tmp_path, busybox_rootfs):
    from minidocker.errors import MinidockerError
    from minidocker.registry.server import RegistryHandler
    upstream = new_store(tmp_path, "upstream")
    image_id = make_image(upstream, "x:1", busybox_rootfs,
                          [{"etc/one": "1" * 5000}, {"etc/two": os.urandom(50_000).hex()}])
    local = new_store(tmp_path, "local")
    make_image(local, "base:latest", busybox_rootfs)
    before = store_snapshot(local.root)
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/app:v1"
        upstream.tag(image_id, ref)
        push(upstream, ref)
        target = upstream.image_manifest(image_id)["layers"][-1]["digest"]
        served = []
        reg.server.RequestHandlerClass = faulty_handler(fault, target, served)
        with pytest.raises(MinidockerError) as err:
            pull(local, ref)
        reg.server.RequestHandlerClass = RegistryHandler
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    if fault != "notjson":
        # the good new layer did reach the store before the failure: it was taken out again
        assert upstream.image_manifest(image_id)["layers"][1]["digest"] in served
    assert store_snapshot(local.root) == before
    assert scratch_files(local.root) == []


def test_image_listing_the_same_layer_twice_round_trips(tmp_path, busybox_rootfs):
    """Docker images often repeat a layer (the same empty tar): it travels once."""
    store = new_store(tmp_path, "source")
    same = {"etc/marker": "same bytes\n"}
    image_id = make_image(store, "dup:1", busybox_rootfs, [same, same])
    assert len({x["digest"] for x in store.image_manifest(image_id)["layers"]}) == 2
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/dup:1"
        store.tag(image_id, ref)
        push(store, ref)
        fresh = new_store(tmp_path, "fresh")
        pulled, out = pull(fresh, ref)
    assert pulled == image_id
    assert len(fresh.image_manifest(pulled)["layers"]) == 3
    assert len([x for x in layer_lines(out) if x.endswith("Pull complete")]) == 2


def test_run_of_a_missing_image_pulls_it_first(tmp_path, source):
    """The slides' last step: on "another machine", run pulls the image, then runs it."""
    store, image_id = source
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/john1/cowsay"
        store.tag(image_id, ref)
        push(store, ref)
        root = str(tmp_path / "another-machine")
        r = minidocker("run", "--rm", "--network", "none", "-e", "MESSAGE=welcome home", ref,
                       "sh", "-c", 'echo "$MESSAGE"; cat /etc/motd', root=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "welcome home\npushed by minidocker\n"
    assert r.stderr.splitlines()[0] == f"Unable to find image '{ref}:latest' locally"
    assert f"Status: Downloaded newer image for {ref}:latest" in r.stderr


def test_an_unreachable_registry_is_one_line_and_leaves_no_trace(tmp_path):
    """A reference without a host means Docker Hub; under the tests' network guard
    (conftest: HTTPS goes to a closed loopback port) it cannot be reached, which is what
    a user sees offline: one line naming the registry, exit 125, nothing in the store."""
    root = str(tmp_path / "offline")
    for args in (("pull", "alpine:3.20"), ("run", "--rm", "alpine:3.20", "true")):
        r = minidocker(*args, root=root, timeout=60)
        assert r.returncode == 125, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("minidocker: ") and "registry-1.docker.io" in last, r.stderr
    assert not os.path.exists(os.path.join(root, "blobs")) or not any(
        files for _, _, files in os.walk(os.path.join(root, "blobs")))


MEMORY_PROBE = """
import io, json, sys
from minidocker.image.store import Store
from minidocker.registry import client
verb, root, ref = sys.argv[1:4]
getattr(client, verb)(ref, Store(root), io.StringIO())
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):          # this process's peak resident memory
        print(int(line.split()[1]) * 1024)
"""


def test_memory_stays_flat_for_a_big_layer(tmp_path, busybox_rootfs):
    """Push and pull of a 96 MB layer, each in a fresh process: its peak memory stays
    far below the layer's size (every blob streams, none is read whole)."""
    import subprocess
    import sys
    size = 96 << 20
    store = new_store(tmp_path, "source")
    big = {"data/big": os.urandom(size)}
    image_id = make_image(store, "big:1", None, [big], compression=None)
    del big
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/big:1"
        store.tag(image_id, ref)
        peaks = {}
        for verb, root in (("push", store.root), ("pull", str(tmp_path / "fresh"))):
            r = subprocess.run([sys.executable, "-c", MEMORY_PROBE, verb, root, ref],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            peaks[verb] = int(r.stdout.split()[-1])
    print({verb: f"{peak >> 20} MB" for verb, peak in peaks.items()})
    for verb, peak in peaks.items():
        assert peak < size // 2, f"{verb} peaked at {peak >> 20} MB for a {size >> 20} MB layer"
