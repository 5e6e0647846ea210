"""The embedded registry, spoken to in raw HTTP as the distribution spec describes it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from helpers_registry import REPO, embedded

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def reg(tmp_path):
    with embedded(tmp_path) as r:
        yield r


def upload(reg, name, data: bytes) -> str:
    """Monolithic upload: POST then PUT ?digest= with the body."""
    r = requests.post(f"{reg.url}/v2/{name}/blobs/uploads/")
    assert r.status_code == 202
    r = requests.put(reg.url + r.headers["Location"], params={"digest": sha(data)}, data=data)
    assert r.status_code == 201, r.text
    return sha(data)


def put_manifest(reg, name, ref, config: bytes, layers: list[bytes]):
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": sha(x), "size": len(x)} for x in layers]}
    body = json.dumps(manifest).encode()
    return requests.put(f"{reg.url}/v2/{name}/manifests/{ref}", data=body,
                        headers={"Content-Type": OCI_MANIFEST}), body


def error_code(response) -> str:
    return response.json()["errors"][0]["code"]


def test_base_endpoint_announces_v2(reg):
    r = requests.get(reg.url + "/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json() == {}


def test_monolithic_upload_then_head_get_and_range(reg):
    data = os.urandom(5000)
    digest = upload(reg, "lab/app", data)
    r = requests.head(f"{reg.url}/v2/lab/app/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "5000"
    assert r.headers["Docker-Content-Digest"] == digest
    assert requests.get(f"{reg.url}/v2/lab/app/blobs/{digest}").content == data
    r = requests.get(f"{reg.url}/v2/lab/app/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 100-199/5000"
    assert r.content == data[100:200]
    r = requests.get(f"{reg.url}/v2/lab/app/blobs/{digest}", headers={"Range": "bytes=9000-"})
    assert r.status_code == 416


def test_single_post_upload_with_digest(reg):
    data = b"posted in one request"
    r = requests.post(f"{reg.url}/v2/lab/app/blobs/uploads/", params={"digest": sha(data)}, data=data)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/lab/app/blobs/{sha(data)}"
    assert requests.get(reg.url + r.headers["Location"]).content == data


def test_chunked_upload_with_ranges_and_status(reg):
    data = os.urandom(3000)
    r = requests.post(f"{reg.url}/v2/lab/app/blobs/uploads/")
    location, uid = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    assert uid in location and r.headers["Range"] == "0-0"
    for start in range(0, 3000, 1000):
        r = requests.patch(reg.url + location, data=data[start:start + 1000], headers={
            "Content-Range": f"{start}-{start + 999}", "Content-Type": "application/octet-stream"})
        assert r.status_code == 202
        assert r.headers["Range"] == f"0-{start + 999}"
        location = r.headers["Location"]
    status = requests.get(reg.url + location)
    assert status.status_code == 204 and status.headers["Range"] == "0-2999"
    # a chunk that does not continue where the upload is: 416, nothing appended
    r = requests.patch(reg.url + location, data=b"x", headers={"Content-Range": "10-10"})
    assert r.status_code == 416
    r = requests.put(reg.url + location, params={"digest": sha(data)})
    assert r.status_code == 201
    assert requests.get(f"{reg.url}/v2/lab/app/blobs/{sha(data)}").content == data


def test_streamed_chunked_transfer_encoding_patch(reg):
    """podman/skopeo send PATCH bodies with Transfer-Encoding: chunked."""
    data = os.urandom(200_000)
    r = requests.post(f"{reg.url}/v2/lab/app/blobs/uploads/")
    r = requests.patch(reg.url + r.headers["Location"],
                       data=(data[i:i + 65536] for i in range(0, len(data), 65536)))
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
    r = requests.put(reg.url + r.headers["Location"], params={"digest": sha(data)})
    assert r.status_code == 201


def test_wrong_digest_is_refused_and_nothing_is_stored(reg):
    r = requests.post(f"{reg.url}/v2/lab/app/blobs/uploads/")
    wrong = sha(b"something else")
    r = requests.put(reg.url + r.headers["Location"], params={"digest": wrong}, data=b"content")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert requests.head(f"{reg.url}/v2/lab/app/blobs/{wrong}").status_code == 404
    assert os.listdir(os.path.join(reg.root, "uploads")) == []
    assert not os.path.exists(os.path.join(reg.root, "blobs", "sha256", wrong[7:]))


def test_unknown_blob_and_upload_errors(reg):
    r = requests.get(f"{reg.url}/v2/lab/app/blobs/{sha(b'nope')}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"
    r = requests.patch(f"{reg.url}/v2/lab/app/blobs/uploads/00000000-0000-0000-0000-000000000000",
                       data=b"x")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    r = requests.get(f"{reg.url}/v2/Bad_Name/tags/list")
    assert r.status_code == 400 and error_code(r) == "NAME_INVALID"
    upload(reg, "lab/app", b"make the repository exist")
    for ref in (".hidden", "-dash"):
        r = requests.get(f"{reg.url}/v2/lab/app/manifests/{ref}")
        assert r.status_code == 400 and error_code(r) == "TAG_INVALID"


def test_blobs_are_per_repository_and_cross_repo_mount_links_them(reg):
    data = b"shared base layer"
    digest = upload(reg, "library/base", data)
    assert requests.head(f"{reg.url}/v2/other/app/blobs/{digest}").status_code == 404
    r = requests.post(f"{reg.url}/v2/other/app/blobs/uploads/",
                      params={"mount": digest, "from": "library/base"})
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/other/app/blobs/{digest}"
    assert requests.get(f"{reg.url}/v2/other/app/blobs/{digest}").content == data
    # mounting from a repository without the blob falls back to a plain upload session
    r = requests.post(f"{reg.url}/v2/third/app/blobs/uploads/",
                      params={"mount": sha(b"absent"), "from": "library/base"})
    assert r.status_code == 202 and "Docker-Upload-UUID" in r.headers


def test_manifest_put_get_head_by_tag_and_digest_then_delete(reg):
    config, layer = b'{"rootfs": {"type": "layers", "diff_ids": []}}', b"layer bytes"
    upload(reg, "lab/app", config)
    upload(reg, "lab/app", layer)
    r, body = put_manifest(reg, "lab/app", "v1", config, [layer])
    assert r.status_code == 201
    digest = sha(body)
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"/v2/lab/app/manifests/{digest}"
    for ref in ("v1", digest):
        got = requests.get(f"{reg.url}/v2/lab/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == body
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
    head = requests.head(f"{reg.url}/v2/lab/app/manifests/v1")
    assert head.headers["Content-Length"] == str(len(body))
    assert requests.get(f"{reg.url}/v2/lab/app/tags/list").json() == {"name": "lab/app", "tags": ["v1"]}
    assert requests.delete(f"{reg.url}/v2/lab/app/manifests/{digest}").status_code == 202
    r = requests.get(f"{reg.url}/v2/lab/app/manifests/v1")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"


def test_manifest_naming_missing_blobs_or_not_json_is_refused(reg):
    config = b"{}"
    upload(reg, "lab/app", config)
    r, _ = put_manifest(reg, "lab/app", "v1", config, [b"never uploaded"])
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    r = requests.put(f"{reg.url}/v2/lab/app/manifests/v1", data=b"not json{",
                     headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    r = requests.put(f"{reg.url}/v2/lab/app/manifests/{sha(b'other')}", data=b"{}",
                     headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert requests.get(f"{reg.url}/v2/lab/app/tags/list").json()["tags"] == []


def test_catalog_and_tags_paginate(reg):
    for name in ("a/one", "b/two", "c/three"):
        upload(reg, name, b"x")
    config = b"{}"
    upload(reg, "a/one", config)
    for tag in ("t1", "t2", "t3"):
        assert put_manifest(reg, "a/one", tag, config, [])[0].status_code == 201
    r = requests.get(f"{reg.url}/v2/_catalog", params={"n": 2})
    assert r.json() == {"repositories": ["a/one", "b/two"]}
    assert 'rel="next"' in r.headers["Link"]
    nxt = re.match(r"<([^>]+)>", r.headers["Link"]).group(1)
    assert requests.get(reg.url + nxt).json() == {"repositories": ["c/three"]}
    r = requests.get(f"{reg.url}/v2/a/one/tags/list", params={"n": 1, "last": "t1"})
    assert r.json()["tags"] == ["t2"]
    r = requests.get(f"{reg.url}/v2/nobody/here/tags/list")
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"


def test_basic_auth_with_htpasswd(tmp_path):
    from minidocker.registry.server import bcrypt_hash
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt_hash('s3cret', 4)}\nbob:{{SHA}}"
                        "fEqNCco3Yq9h5ZUglD3CZJT4lBs=\n")      # sha1("123456")
    with embedded(tmp_path, htpasswd=str(htpasswd)) as reg:
        r = requests.get(reg.url + "/v2/")
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert requests.get(reg.url + "/v2/", auth=("alice", "wrong")).status_code == 401
        assert requests.get(reg.url + "/v2/", auth=("alice", "s3cret")).status_code == 200
        assert requests.get(reg.url + "/v2/", auth=("bob", "123456")).status_code == 200


def test_registry_serve_command(tmp_path):
    """``minidocker registry serve --addr 127.0.0.1:0`` prints where it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "minidocker", "registry", "serve", "--addr",
                             "127.0.0.1:0", "--root", str(tmp_path / "reg"), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        m = re.match(r"minidocker registry listening on (http://127\.0\.0\.1:\d+) \(storage: (.*)\)", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        assert m.group(2) == str(tmp_path / "reg")
        assert requests.get(m.group(1) + "/v2/").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0


def test_registry_serve_bad_address(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minidocker", "registry", "serve", "--addr", "nope",
                        "--root", str(tmp_path / "reg")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 125
    assert r.stderr.strip() == "minidocker: invalid listen address 'nope': expected HOST:PORT"


def test_an_upload_cut_short_stores_nothing(reg):
    """The client promises 100000 bytes, sends 1000 and hangs up: no blob appears."""
    import socket
    data = os.urandom(100_000)
    r = requests.post(f"{reg.url}/v2/lab/app/blobs/uploads/")
    location = r.headers["Location"] + f"?digest={sha(data)}"
    host, port = reg.host.split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PUT {location} HTTP/1.1\r\nHost: {reg.host}\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:1000])
    assert requests.head(f"{reg.url}/v2/lab/app/blobs/{sha(data)}").status_code == 404
    assert not os.path.exists(os.path.join(reg.root, "blobs", "sha256", sha(data)[7:]))
    # the session stays resumable: it holds what arrived, no more
    status = requests.get(reg.url + r.headers["Location"])
    assert status.status_code == 204 and int(status.headers["Range"].split("-")[1]) < len(data)


def test_parallel_uploads_of_the_same_blob(reg):
    from concurrent.futures import ThreadPoolExecutor
    data = os.urandom(300_000)
    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(lambda i: upload(reg, f"lab/app{i}", data), range(4)))
    assert set(digests) == {sha(data)}
    for i in range(4):
        assert requests.get(f"{reg.url}/v2/lab/app{i}/blobs/{sha(data)}").content == data
    assert os.listdir(os.path.join(reg.root, "uploads")) == []


def test_stale_upload_sessions_are_purged(tmp_path):
    from minidocker.registry.server import Storage
    storage = Storage(str(tmp_path / "reg"))
    old, fresh = storage.new_upload("lab/app"), storage.new_upload("lab/app")
    os.utime(storage.upload_dir(old), (0, 0))
    assert storage.purge_stale_uploads() == 1
    assert os.listdir(os.path.join(storage.root, "uploads")) == [fresh]
