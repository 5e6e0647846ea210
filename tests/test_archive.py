"""``save`` and ``load``: the archive format, old formats, digests, safety, memory.

The archives the tests feed to ``load`` are made here byte by byte, in each format's
real layout (Docker 25+, Docker 1.10-24, Docker < 1.10), so that every path of the
loader runs without needing those Docker versions.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pty
import subprocess
import sys
import tarfile

import pytest

from conftest import needs_root
from helpers_layers import (make_image, md_ok, minidocker, sha256, store_snapshot,
                            write_tar)
from minidocker.image.store import Store

pytestmark = [needs_root]

HELLO = b"hello from a layer\n"


@pytest.fixture
def store(data_root):
    return Store()


@pytest.fixture
def image(store, busybox_rootfs):
    """busybox:latest in the test's data root."""
    return make_image(store, busybox_rootfs, tmp_dir=store.root)


def save_bytes(*refs) -> bytes:
    r = minidocker("save", *refs, text=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def members(data: bytes) -> dict[str, bytes | None]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            out[m.name] = tar.extractfile(m).read() if m.isreg() else None
    return out


def load(data: bytes, *args):
    return minidocker("load", *args, input=data, text=False)


def busybox_layer(store, image_id) -> bytes:
    digest = store.image_manifest(image_id)["layers"][0]["digest"]
    return store.read_blob(digest)


def tar_bytes(entries) -> bytes:
    """A layer tar from (TarInfo fields dict or (name, content)) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                name, content = entry
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(content), 0o644, 1700000000
                tar.addfile(info, io.BytesIO(content))
            else:
                info = tarfile.TarInfo(entry.pop("name"))
                for k, v in entry.items():
                    setattr(info, k, v)
                tar.addfile(info)
    return buf.getvalue()


def docker_1_10_archive(path, layers: list[bytes], tags, cmd=("cat", "/hello"),
                        config_override=None, shared_symlink=False) -> str:
    """A ``docker save`` archive as Docker 1.10-24 wrote it: ``<v1 id>/layer.tar``,
    ``json``, ``VERSION``, ``<config hex>.json``, ``manifest.json``, ``repositories``."""
    diff_ids = [sha256(layer) for layer in layers]
    config = {"architecture": "amd64", "os": "linux", "created": "2017-01-01T00:00:00Z",
              "config": {"Cmd": list(cmd), "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "2017-01-01T00:00:00Z", "created_by": f"step {i}"}
                          for i in range(len(layers))]}
    config.update(config_override or {})
    config_bytes = json.dumps(config).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    entries, layer_paths, parent = [], [], ""
    for i, layer in enumerate(layers):
        v1_id = hashlib.sha256(f"{parent}{diff_ids[i]}".encode()).hexdigest()
        entries += [(f"{v1_id}/", None), (f"{v1_id}/VERSION", b"1.0"),
                    (f"{v1_id}/json", json.dumps({"id": v1_id, "parent": parent or None}).encode()),
                    (f"{v1_id}/layer.tar", layer)]
        layer_paths.append(f"{v1_id}/layer.tar")
        parent = v1_id
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": list(tags), "Layers": layer_paths}]
    entries += [(f"{config_hex}.json", config_bytes),
                ("manifest.json", json.dumps(manifest).encode()),
                ("repositories", json.dumps({}).encode())]
    write_tar(path, entries)
    if shared_symlink:
        # a second image sharing the first layer through a symlink, as old Docker wrote
        with tarfile.open(path, "a") as tar:
            info = tarfile.TarInfo("dup/layer.tar")
            info.type, info.linkname = tarfile.SYMTYPE, f"../{layer_paths[0]}"
            tar.addfile(info)
    return config_hex


# =========================================================================== save
def test_save_writes_oci_layout_and_docker_manifest(store, image):
    data = save_bytes("busybox")
    files = members(data)
    names = list(files)
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    # every blob is named by its digest
    for name, content in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(content).hexdigest() == name.rsplit("/", 1)[1]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["busybox:latest"]
    assert entry["Config"] == f"blobs/sha256/{image[7:]}"
    index = json.loads(files["index.json"])
    (descriptor,) = index["manifests"]
    assert descriptor["annotations"] == {
        "io.containerd.image.name": "docker.io/library/busybox:latest",
        "org.opencontainers.image.ref.name": "latest"}
    manifest = json.loads(files[f"blobs/sha256/{descriptor['digest'][7:]}"])
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [f"blobs/sha256/{d['digest'][7:]}" for d in manifest["layers"]] == entry["Layers"]
    assert json.loads(files["repositories"]) == {"busybox": {"latest": entry["Layers"][-1][13:]}}
    # reproducible: the same image saved twice is the same archive
    assert save_bytes("busybox") == data


def test_save_to_file_and_refuse_a_terminal(store, image, tmp_path):
    out = tmp_path / "busybox.tar"
    md_ok("save", "-o", out, "busybox:latest")
    assert "manifest.json" in members(out.read_bytes())
    master, slave = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "minidocker", "save", "busybox"],
                           stdout=slave, stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 125
    assert r.stderr.strip() == ("minidocker: cowardly refusing to save to a terminal. "
                                "Use the -o flag or redirect")


def test_save_unknown_image_fails_and_writes_nothing(store, image, tmp_path):
    out = tmp_path / "x.tar"
    r = minidocker("save", "-o", out, "busybox", "nosuch:tag")
    assert r.returncode == 125
    assert r.stderr.strip() == "minidocker: Unable to find image 'nosuch:tag' locally"
    assert os.listdir(tmp_path) == ["root"]     # no half-written archive left


def test_save_by_repository_takes_every_tag_and_by_id_none(store, image):
    md_ok("tag", "busybox", "busybox:other")
    (entry,) = json.loads(members(save_bytes("busybox"))["manifest.json"])
    assert sorted(entry["RepoTags"]) == ["busybox:latest", "busybox:other"]
    (entry,) = json.loads(members(save_bytes(image[7:19]))["manifest.json"])
    assert entry["RepoTags"] is None


# =========================================================================== load
def test_round_trip_keeps_id_and_tag_and_runs(store, image, tmp_path, monkeypatch):
    md_ok("tag", "busybox", "kept:v1")
    data = save_bytes("kept:v1")
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "other-root"))
    r = load(data)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Loaded image: kept:v1\n"
    assert Store().resolve("kept:v1") == image
    out = md_ok("run", "--rm", "--network", "none", "kept:v1", "echo", "loaded and running")
    assert out == "loaded and running\n"
    # loading the same archive again: nothing new, same answer
    assert load(data).stdout == b"Loaded image: kept:v1\n"


def test_load_untagged_prints_the_id(store, image, tmp_path, monkeypatch):
    data = save_bytes(image)
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "other-root"))
    r = minidocker("load", "-i", "/dev/stdin", input=data, text=False)
    assert r.stdout.decode() == f"Loaded image ID: {image}\n"


def test_load_compressed_archives(store, image, tmp_path, monkeypatch):
    data = save_bytes("busybox")
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "gz-root"))
    assert load(gzip.compress(data, 1)).stdout == b"Loaded image: busybox:latest\n"
    zst = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True)
    if zst.returncode == 0:
        monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "zstd-root"))
        assert load(zst.stdout).stdout == b"Loaded image: busybox:latest\n"


def test_load_moves_an_existing_tag_like_docker(store, image, tmp_path):
    data = save_bytes("busybox")
    other = tmp_path / "other"
    os.makedirs(other / "bin")
    old = make_image(store, str(other), tag="busybox:latest", cmd=("true",), tmp_dir=store.root)
    r = load(data)
    assert r.stdout.decode().splitlines() == [
        f"The image busybox:latest already exists, renaming the old one with ID {old} "
        "to empty string", "Loaded image: busybox:latest"]
    assert store.resolve("busybox") == image


def test_load_docker_1_10_archive_with_shared_layer(store, image, tmp_path):
    base = busybox_layer(store, image)
    hello = tar_bytes([("hello", HELLO)])
    path = tmp_path / "old.tar"
    docker_1_10_archive(str(path), [base, hello], ["old:1.13"], shared_symlink=True)
    r = minidocker("load", "-i", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Loaded image: old:1.13\n"
    assert md_ok("run", "--rm", "--network", "none", "old:1.13") == HELLO.decode()


def test_load_pre_1_10_archive(store, image, tmp_path):
    """No manifest.json: a chain of v1 images linked by ``parent``; one of them
    changed no files (its layer.tar is an empty archive)."""
    base = busybox_layer(store, image)
    hello = tar_bytes([("hello", HELLO)])
    empty = b"\0" * 1024
    ids = [c * 64 for c in "abc"]
    v1 = [
        {"id": ids[0], "created": "2015-03-24T17:39:00Z",
         "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file:busybox in /"]}},
        {"id": ids[1], "parent": ids[0], "created": "2015-03-24T17:40:00Z",
         "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]}},
        {"id": ids[2], "parent": ids[1], "created": "2015-03-24T17:56:00Z",
         "author": "core", "comment": "cowsay",
         "container_config": {"Cmd": ["bash"]},
         "config": {"Cmd": ["cat", "/hello"], "Env": ["PATH=/bin:/usr/bin"]},
         "architecture": "amd64", "os": "linux"},
    ]
    entries = []
    for meta, layer in zip(v1, [base, empty, hello]):
        entries += [(f"{meta['id']}/", None), (f"{meta['id']}/VERSION", b"1.0"),
                    (f"{meta['id']}/json", json.dumps(meta).encode()),
                    (f"{meta['id']}/layer.tar", layer)]
    entries.append(("repositories", json.dumps({"cowsay": {"latest": ids[2]}}).encode()))
    path = tmp_path / "ancient.tar"
    write_tar(str(path), entries)
    r = minidocker("load", "-i", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Loaded image: cowsay:latest\n"
    config = store.image_config(store.resolve("cowsay"))
    assert config["rootfs"]["diff_ids"] == [sha256(base), sha256(hello)]
    assert [h.get("empty_layer", False) for h in config["history"]] == [False, True, False]
    assert config["history"][2]["created_by"] == "bash"
    assert md_ok("run", "--rm", "--network", "none", "cowsay") == HELLO.decode()


# =========================================================================== refusals
def assert_refused(data_or_path, message_part, root):
    before = store_snapshot(root)
    if isinstance(data_or_path, bytes):
        r = load(data_or_path)
        err = r.stderr.decode()
    else:
        r = minidocker("load", "-i", data_or_path)
        err = r.stderr
    assert r.returncode == 125, (r.stdout, err)
    assert err.startswith("minidocker: ") and err.count("\n") == 1, err
    assert message_part in err, err
    assert store_snapshot(root) == before, "a failed load changed the store"
    assert not os.listdir(os.path.join(root, "tmp")), "a failed load left scratch files"


def test_corrupt_layer_is_named_and_store_untouched(store, image, data_root, tmp_path,
                                                    monkeypatch):
    data = save_bytes("busybox")
    layer_digest = store.image_manifest(image)["layers"][0]["digest"]
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "fresh"))
    md_ok("images")          # an empty store to load into
    # flip one byte well inside the layer blob's data
    offset = data.index(b"bin/busybox") + 4000
    corrupt = data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]
    assert_refused(corrupt, f"digest mismatch for blob {layer_digest}", str(tmp_path / "fresh"))


def test_truncated_archive_fails_cleanly(store, image, tmp_path, monkeypatch):
    data = save_bytes("busybox")
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "fresh"))
    md_ok("images")
    # cut in a layer, in the last file (repositories), in the first header
    for cut in (len(data) // 2, len(data) - 1100, 700):
        assert_refused(data[:cut], "invalid archive", str(tmp_path / "fresh"))
    assert_refused(b"this is not a tar file at all" * 40, "invalid archive",
                   str(tmp_path / "fresh"))


def test_second_image_failing_undoes_the_first(store, image, data_root, tmp_path):
    """Two images in one archive, the second one broken: nothing of the first stays."""
    hello = tar_bytes([("hello", HELLO)])
    bye = tar_bytes([("bye", b"bye")])
    path = tmp_path / "two.tar"
    docker_1_10_archive(str(path), [hello], ["first:1"])
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() if m.isreg() else None
                 for m in tar.getmembers()}
    manifest = json.loads(files["manifest.json"])
    bad_config = json.dumps({"os": "linux", "architecture": "amd64", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [sha256(b"other")]}}).encode()
    bad_hex = hashlib.sha256(bad_config).hexdigest()
    manifest.append({"Config": f"{bad_hex}.json", "RepoTags": ["second:1"],
                     "Layers": ["bye/layer.tar"]})
    files.update({"manifest.json": json.dumps(manifest).encode(), f"{bad_hex}.json": bad_config,
                  "bye/layer.tar": bye})
    write_tar(str(path), list(files.items()))
    assert_refused(str(path), "the image config says", data_root)
    assert store.repositories() == {"busybox:latest": image}


def test_config_digest_mismatch(store, image, data_root, tmp_path):
    path = tmp_path / "bad-config.tar"
    config_hex = docker_1_10_archive(str(path), [tar_bytes([("hello", HELLO)])], ["x:1"])
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() if m.isreg() else None for m in tar.getmembers()}
    files[f"{config_hex}.json"] = files[f"{config_hex}.json"].replace(b"2017", b"2018")
    write_tar(str(path), list(files.items()))
    assert_refused(str(path), f"digest mismatch for blob sha256:{config_hex}", data_root)


@pytest.mark.parametrize("entries, why", [
    ([("../evil", b"x")], "path leaves the layer"),
    ([("/etc/evil", b"x")], "absolute path"),
    ([{"name": "etc/passwd", "type": tarfile.LNKTYPE, "linkname": "../../../etc/passwd"}],
     "points outside the layer"),
    ([{"name": "evil", "type": tarfile.SYMTYPE, "linkname": "/etc"}, ("evil/passwd", b"x")],
     "is a symlink"),
    ([{"name": "sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}],
     "device nodes are only allowed under /dev"),
])
def test_unsafe_layers_are_refused(store, image, data_root, tmp_path, entries, why):
    path = tmp_path / "unsafe.tar"
    docker_1_10_archive(str(path), [tar_bytes(entries)], ["unsafe:1"])
    assert_refused(str(path), why, data_root)
    assert not os.path.exists("/etc/evil")


def test_not_an_image_archive(store, image, data_root, tmp_path):
    path = tmp_path / "plain.tar"
    write_tar(str(path), [("hello", HELLO)])
    assert_refused(str(path), "no manifest.json, index.json or repositories", data_root)
    r = minidocker("load", "-i", tmp_path / "missing.tar")
    assert r.returncode == 125 and "no such file or directory" in r.stderr
    r = minidocker("load", input="")
    assert r.returncode == 125
    assert r.stderr == "minidocker: requested load from stdin, but stdin is empty\n"


# =========================================================================== memory
@pytest.mark.slow
def test_save_and_load_stream_with_flat_memory(store, tmp_path):
    """A 128 MiB layer goes through save and load; neither holds it in memory (peak
    RSS of the process stays well below the layer's size)."""
    big = tmp_path / "bigroot"
    os.makedirs(big)
    with open(big / "zeros", "wb") as f:
        f.truncate(128 << 20)
    make_image(store, str(big), tag="big:1", cmd=("true",), tmp_dir=store.root)
    archive = tmp_path / "big.tar"
    probe = ("import resource, sys; from minidocker.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")

    def peak_kib(*args, root):
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                           env=dict(os.environ, MINIDOCKER_ROOT=root), timeout=120)
        assert r.returncode == 0, r.stderr
        return int(r.stderr.strip().splitlines()[-1])

    assert peak_kib("save", "-o", str(archive), "big:1", root=store.root) < 80 * 1024
    assert peak_kib("load", "-i", str(archive), root=str(tmp_path / "r2")) < 80 * 1024
    assert Store(str(tmp_path / "r2")).resolve("big:1") == store.resolve("big:1")
