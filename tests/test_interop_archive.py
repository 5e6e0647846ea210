"""Interop: what ``minidocker save`` writes, the real tools read - and the other way round.

Peers (Debian packages): podman, skopeo, umoci, runc, oci-image-tool. Each test skips
with the reason when its tool is missing. podman and skopeo run through :mod:`peers`:
podman with a private store (vfs driver: no mounts left behind), removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile

import pytest

from conftest import needs_root
from helpers_layers import make_image, md_ok, minidocker, remove_all_containers
from minidocker.image.store import Store
from peers import Podman, need, skopeo

pytestmark = [needs_root, pytest.mark.interop]


def run(*argv, env=None, input=None, timeout=120):
    r = subprocess.run(list(map(str, argv)), capture_output=True, text=True, env=env,
                       input=input, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, argv))} -> {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


@pytest.fixture
def hello_image(data_root, busybox_rootfs):
    """``lab/hello:v1``: busybox + one committed layer that adds /hello and deletes
    /etc/group (so the archive carries a whiteout). Returns the store."""
    store = Store()
    make_image(store, busybox_rootfs, tmp_dir=store.root)
    md_ok("run", "--network", "none", "--name", "maker", "busybox", "sh", "-c",
          "echo hello from minidocker > /hello; rm /etc/group")
    md_ok("commit", "-c", 'CMD ["cat", "/hello"]', "maker", "lab/hello:v1")
    yield store
    remove_all_containers()


@pytest.fixture
def saved(hello_image, tmp_path):
    path = tmp_path / "hello.tar"
    md_ok("save", "-o", path, "lab/hello:v1")
    return path


@pytest.fixture
def podman():
    p = Podman.or_skip(storage="vfs", prefix="mdpod-")
    yield p
    p.cleanup()


def extract(archive, dest):
    os.makedirs(dest)
    with tarfile.open(archive) as tar:
        tar.extractall(dest)
    return dest


# =========================================================================== ours -> theirs
def test_podman_loads_our_save_and_runs_it(saved, podman):
    out = podman("load", "-i", saved).stdout
    assert "Loaded image: docker.io/lab/hello:v1" in out
    assert podman("run", "--rm", "--network", "none", "lab/hello:v1").stdout == "hello from minidocker\n"
    listing = podman("run", "--rm", "--network", "none", "lab/hello:v1", "ls", "/etc").stdout
    assert "passwd" in listing.split() and "group" not in listing.split()


def test_skopeo_reads_both_formats(saved, hello_image):
    image_id = hello_image.resolve("lab/hello:v1")
    diff_ids = hello_image.image_config(image_id)["rootfs"]["diff_ids"]
    docker = json.loads(skopeo("inspect", f"docker-archive:{saved}").stdout)
    assert docker["Layers"] == diff_ids          # uncompressed layers: digest == diff_id
    oci = json.loads(skopeo("inspect", f"oci-archive:{saved}").stdout)
    with tarfile.open(saved) as tar:
        index = json.load(tar.extractfile("index.json"))
    assert oci["Digest"] == index["manifests"][0]["digest"]
    config = json.loads(skopeo("inspect", "--config", f"oci-archive:{saved}").stdout)
    assert config["config"]["Cmd"] == ["cat", "/hello"]
    raw = skopeo("inspect", "--raw", "--config", f"docker-archive:{saved}").stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == image_id


def test_oci_image_tool_validates_the_layout(saved, tmp_path):
    need("oci-image-tool")
    layout = extract(saved, tmp_path / "layout")
    out = run("oci-image-tool", "validate", "--type", "image", layout)
    assert "Validation succeeded" in out


def test_umoci_unpacks_and_runc_runs(saved, tmp_path):
    need("umoci", "runc")
    layout = extract(saved, tmp_path / "layout")
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:v1", bundle)
    assert (bundle / "rootfs/hello").read_text() == "hello from minidocker\n"
    assert not (bundle / "rootfs/etc/group").exists()      # the whiteout was applied
    spec_path = bundle / "config.json"
    spec = json.loads(spec_path.read_text())
    assert spec["process"]["args"] == ["cat", "/hello"]
    spec["process"]["terminal"] = False
    name = f"md-interop-{os.getpid()}"
    spec["linux"]["cgroupsPath"] = f"/minidocker/{name}"   # absolute: relative is below runc's own group
    spec_path.write_text(json.dumps(spec))
    state = tmp_path / "runc-state"
    try:
        r = subprocess.run(["runc", "--root", state, "run", name], cwd=bundle,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from minidocker\n"
    finally:
        subprocess.run(["runc", "--root", state, "delete", "-f", name], capture_output=True)


# =========================================================================== theirs -> ours
@pytest.fixture
def podman_image(podman, busybox_rootfs):
    """``localhost/bb2``: podman's import of the busybox rootfs plus one podman commit
    (a second layer, with a whiteout made by podman's overlay/vfs)."""
    podman.import_rootfs(busybox_rootfs, "localhost/busybox")
    podman("run", "--name", "p", "--network", "none", "localhost/busybox", "sh", "-c",
           "echo made by podman > /p; rm /etc/group")
    podman("commit", "-q", "--change", 'CMD ["cat", "/p"]', "p", "localhost/bb2")
    return podman


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_minidocker_loads_podman_save(podman_image, data_root, tmp_path, fmt):
    path = tmp_path / f"bb2-{fmt}.tar"
    podman_image("save", "--format", fmt, "-o", path, "localhost/bb2")
    try:
        r = minidocker("load", "-i", path)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "Loaded image: localhost/bb2:latest\n"
        assert md_ok("run", "--rm", "--network", "none", "localhost/bb2") == "made by podman\n"
        r = minidocker("run", "--rm", "--network", "none", "localhost/bb2", "ls", "/etc")
        assert "group" not in r.stdout.split() and "passwd" in r.stdout.split()
    finally:
        remove_all_containers()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_minidocker_loads_compressed_oci_archive(saved, hello_image, tmp_path, monkeypatch,
                                                 compression):
    out = tmp_path / f"hello-{compression}.tar"
    skopeo("copy", "-q", "--dest-compress", "--dest-compress-format", compression,
           f"docker-archive:{saved}", f"oci-archive:{out}:localhost/hello:{compression}")
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(tar.extractfile(
            "blobs/sha256/" + index["manifests"][0]["digest"][7:]))
    assert all(layer["mediaType"].endswith("+" + compression) for layer in manifest["layers"])
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / f"root-{compression}"))
    try:
        r = minidocker("load", "-i", out)
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"Loaded image: localhost/hello:{compression}\n"
        assert md_ok("run", "--rm", "--network", "none",
                     f"localhost/hello:{compression}") == "hello from minidocker\n"
    finally:
        remove_all_containers()
