"""Registries and images for the registry tests.

- :func:`distribution` starts Debian's ``docker-registry`` (Distribution 2.8) on a free
  127.0.0.1 port with a private config (never the package's default, which listens on
  every interface), and stops it;
- :func:`embedded` runs minidocker's own registry in a thread;
- :func:`make_image` builds a small image in a minidocker store through the store API;
- :func:`write_oci_layout` writes an OCI image layout by hand (gzip/zstd/plain layers,
  optionally a multi-platform index) for skopeo to push;
- :func:`store_snapshot` lists a data root, to prove a failed pull changed nothing.

podman and skopeo are run through :mod:`peers`. Everything listens on 127.0.0.1 only;
every process started here is stopped here.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_v2(url: str, timeout: float = 10.0) -> None:
    import requests
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url + "/v2/", timeout=1)
            return
        except requests.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Running:
    """A registry under test: ``host`` (``127.0.0.1:PORT``) and ``url``."""

    def __init__(self, host, kind, root, server=None, proc=None):
        self.host, self.kind, self.root = host, kind, root
        self.url = f"http://{host}"
        self.server, self.proc = server, proc


@contextlib.contextmanager
def distribution(tmp_path, htpasswd: str | None = None):
    """Debian's docker-registry on 127.0.0.1:<free port>, with storage in tmp_path."""
    binary = shutil.which("docker-registry")
    if not binary:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    base = tmp_path / f"distribution-{port}"
    base.mkdir()
    auth = ""
    if htpasswd:
        auth = f"auth: {{htpasswd: {{realm: minidocker-test, path: {htpasswd}}}}}\n"
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        "log: {level: error, accesslog: {disabled: true}}\n" + auth)
    log = open(base / "log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        wait_for_v2(f"http://127.0.0.1:{port}")
        yield Running(f"127.0.0.1:{port}", "distribution", str(base / "data"), proc=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def embedded(tmp_path, htpasswd: str | None = None, handler=None):
    """minidocker's registry in a thread on 127.0.0.1:<free port>; ``handler``: a
    RegistryHandler subclass (fault injection, bearer auth)."""
    from minidocker.registry import server as srv
    root = tmp_path / f"embedded-{time.monotonic_ns()}"
    server = srv.start_in_thread(str(root), "127.0.0.1:0", htpasswd=htpasswd)
    if handler is not None:
        server.RequestHandlerClass = handler
    try:
        yield Running(f"127.0.0.1:{server.server_address[1]}", "embedded", str(root), server=server)
    finally:
        server.shutdown()
        server.server_close()
        server.thread.join(5)


@contextlib.contextmanager
def registry_of_kind(kind, tmp_path, **kw):
    with (distribution if kind == "distribution" else embedded)(tmp_path, **kw) as reg:
        yield reg


# --------------------------------------------------------------------------- images
def tar_bytes(files: dict[str, bytes | str], base_dir: str | None = None) -> bytes:
    """A layer tar: the tree at ``base_dir`` (if any) plus ``files`` {path: content}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if base_dir:
            for name in sorted(os.listdir(base_dir)):
                tar.add(os.path.join(base_dir, name), arcname=name)
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, kind: str | None) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "zstd":
        if not shutil.which("zstd"):
            pytest.skip("zstd is not installed")
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                              check=True).stdout
    return data


def make_image(store, name: str, rootfs: str | None, layers: list[dict] | None = None,
               cmd=("sh",), env=None, compression: str | None = "gzip") -> str:
    """An image in ``store`` tagged ``name``: the busybox ``rootfs`` as a gzip layer
    (if given) plus one layer per ``{path: content}`` dict in ``layers`` (compressed
    with ``compression``)."""
    from minidocker.image.store import new_config
    descriptors = []
    if rootfs:
        descriptors.append(store.add_layer(io.BytesIO(compress(tar_bytes({}, rootfs), "gzip"))))
    for files in layers or []:
        descriptors.append(store.add_layer(io.BytesIO(compress(tar_bytes(files), compression))))
    config = new_config(cmd=list(cmd), env=env, diff_ids=[d["diff_id"] for d in descriptors],
                        created="2026-01-01T00:00:00Z")
    image_id = store.write_image(config, descriptors)
    store.tag(image_id, name)
    return image_id


def _write_blob(layout: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest[7:])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": digest, "size": len(data)}


LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
               None: "application/vnd.oci.image.layer.v1.tar"}


def write_oci_manifest(layout: str, layers: list[tuple], arch: str = "amd64",
                       cmd=("sh",)) -> dict:
    """Blobs + config + manifest for one platform; ``layers``: [(compression, tar bytes)].
    Returns the manifest's descriptor (with platform)."""
    descriptors, diff_ids = [], []
    for compression, tar in layers:
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        d = _write_blob(layout, compress(tar, compression))
        descriptors.append({"mediaType": LAYER_TYPES[compression], **d})
    config = {"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": list(cmd), "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **_write_blob(layout, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": descriptors}
    return {"mediaType": manifest["mediaType"],
            **_write_blob(layout, json.dumps(manifest).encode()),
            "platform": {"architecture": arch, "os": "linux"}}


def write_oci_layout(layout: str, tag: str, platforms: dict[str, list[tuple]],
                     index: bool = False) -> None:
    """An OCI image layout (``oci-layout``, ``index.json``, ``blobs/``) with the image
    ``tag``: one manifest, or with ``index`` a nested image index of one manifest per
    ``platforms`` entry (arch -> layers), as multi-arch images are."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    manifests = [write_oci_manifest(layout, layers, arch) for arch, layers in platforms.items()]
    if index:
        nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": manifests}
        top = {"mediaType": nested["mediaType"], **_write_blob(layout, json.dumps(nested).encode())}
    else:
        top = {k: v for k, v in manifests[0].items() if k != "platform"}
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)


# --------------------------------------------------------------------------- checks
def store_snapshot(root: str) -> dict[str, int]:
    """Every file and directory of a data root with its size (dirs: -1), except the
    scratch and lock directories. Two equal snapshots: nothing was added or lost."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.split(os.sep)[0] in ("tmp", "locks"):
            continue
        for d in dirnames:
            if rel == "." and d in ("tmp", "locks"):
                continue
            snap[os.path.normpath(os.path.join(rel, d))] = -1
        for name in filenames:
            snap[os.path.normpath(os.path.join(rel, name))] = os.lstat(os.path.join(dirpath, name)).st_size
    return snap


def scratch_files(root: str) -> list[str]:
    tmp = os.path.join(root, "tmp")
    return sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []


def minidocker(*args, root=None, env=None, input=None, timeout=120):
    """Run the CLI as a user does; returns the CompletedProcess (text)."""
    full_env = dict(os.environ, **(env or {}))
    if root:
        full_env["MINIDOCKER_ROOT"] = root
    return subprocess.run([sys.executable, "-m", "minidocker", *args], capture_output=True,
                          text=True, env=full_env, input=input, timeout=timeout, cwd=REPO)
