"""The image store: blobs, layers, images, tags, references; concurrent use; bootstrap."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import needs_root
from minidocker.errors import Conflict, InvalidInput, NotFound
from minidocker.image import reference
from minidocker.image.store import Store, canonical_json, new_config

pytestmark = needs_root


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_image(store, files_per_layer, tag=None, cmd=("sh",), label=""):
    layers = [store.add_layer(io.BytesIO(layer_tar(files))) for files in files_per_layer]
    config = new_config(cmd=list(cmd), history_by=f"test {label}",
                        created="2024-01-01T00:00:00Z")
    config["history"] = [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i} {label}"}
                         for i in range(len(layers))]
    image_id = store.write_image(config, layers)
    if tag:
        store.tag(image_id, tag)
    return image_id, layers


@pytest.fixture
def store(data_root):
    return Store()


# ----------------------------------------------------------------------------- blobs
def test_put_blob_is_content_addressed(store):
    digest, size = store.put_blob(io.BytesIO(b"hello"))
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert size == 5
    assert store.has_blob(digest)
    with store.open_blob(digest) as f:
        assert f.read() == b"hello"
    assert store.blob_path(digest) == os.path.join(store.root, "blobs/sha256", digest[7:])
    # the same bytes again: same blob, nothing else appears
    assert store.put_blob(io.BytesIO(b"hello")) == (digest, 5)
    assert os.listdir(store.blobs_dir) == [digest[7:]]
    assert os.listdir(store.tmp_dir) == []


def test_put_blob_verifies_expected_digest(store):
    wrong = "sha256:" + "0" * 64
    with pytest.raises(InvalidInput, match=f"digest mismatch for blob {wrong}"):
        store.put_blob(io.BytesIO(b"tampered"), expected=wrong)
    assert not store.has_blob(wrong)
    assert os.listdir(store.blobs_dir) == []
    assert os.listdir(store.tmp_dir) == []


def test_malformed_digest_is_refused(store):
    for bad in ("sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64, ""):
        with pytest.raises(InvalidInput):
            store.blob_path(bad)


# ----------------------------------------------------------------------------- layers
def test_layer_extracted_once_whatever_the_compression(store):
    plain = layer_tar({"a": b"x" * 1000, "b": b"y"})
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    gz = store.add_layer(io.BytesIO(gzip.compress(plain)))
    raw = store.add_layer(io.BytesIO(plain))
    assert gz["diff_id"] == raw["diff_id"] == diff_id
    assert gz["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert raw["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert gz["digest"] != raw["digest"] and raw["digest"] == diff_id
    assert os.listdir(store.layers_dir) == [diff_id[7:]]
    assert open(os.path.join(store.layer_dir(diff_id), "a"), "rb").read() == b"x" * 1000
    assert store.layer_size(diff_id) == 1001


@pytest.mark.skipif(not shutil.which("zstd"), reason="needs the zstd program")
def test_zstd_layer(store):
    plain = layer_tar({"z": b"zstd!"})
    compressed = subprocess.run(["zstd", "-q", "-c"], input=plain, capture_output=True,
                                check=True).stdout
    layer = store.add_layer(io.BytesIO(compressed))
    assert layer["diff_id"] == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert layer["mediaType"].endswith("+zstd")
    assert open(os.path.join(store.layer_dir(layer["diff_id"]), "z"), "rb").read() == b"zstd!"


def test_layer_extracted_again_if_its_directory_went_missing(store):
    layer = store.add_layer(io.BytesIO(layer_tar({"f": b"1"})))
    shutil.rmtree(store.layer_dir(layer["diff_id"]))
    again = store.add_layer(io.BytesIO(layer_tar({"f": b"1"})))
    assert again == layer
    assert os.path.exists(os.path.join(store.layer_dir(layer["diff_id"]), "f"))


# ----------------------------------------------------------------------------- images
def test_write_image_records_oci_manifest_and_config(store):
    image_id, layers = make_image(store, [{"bin/a": b"1"}, {"bin/b": b"22"}])
    manifest = store.image_manifest(image_id)
    config_bytes = store.read_blob(manifest["config"]["digest"])
    # Docker's rule: the image id is the digest of the config bytes.
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["config"]["size"] == len(config_bytes)
    assert [layer["digest"] for layer in manifest["layers"]] == [x["digest"] for x in layers]
    config = store.image_config(image_id)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [x["diff_id"] for x in layers]}
    assert config["os"] == "linux" and config["architecture"]
    assert config["config"]["Cmd"] == ["sh"]
    assert store.layer_dirs(image_id) == [store.layer_dir(x["diff_id"]) for x in layers]
    assert os.path.exists(os.path.join(store.images_dir, image_id[7:] + ".json"))


def test_write_image_refuses_mismatched_diff_ids(store):
    layer = store.add_layer(io.BytesIO(layer_tar({"a": b"1"})))
    config = new_config(diff_ids=["sha256:" + "1" * 64])
    with pytest.raises(InvalidInput, match="diff_ids do not match"):
        store.write_image(config, [layer])


def test_same_config_same_image_id(store):
    first, _ = make_image(store, [{"a": b"1"}])
    second, _ = make_image(store, [{"a": b"1"}])
    assert first == second
    assert store.image_ids() == [first]


def test_list_images_reports_tags_and_sizes(store):
    image_id, _ = make_image(store, [{"a": b"x" * 300}, {"b": b"y" * 200}], tag="app:1")
    store.tag(image_id, "app:latest")
    (entry,) = store.list_images()
    assert entry == {"id": image_id, "tags": ["app:1", "app:latest"],
                     "created": "2024-01-01T00:00:00Z", "size": 500}


# ----------------------------------------------------------------------------- tags/resolve
def test_tags_are_normalised_like_docker(store):
    image_id, _ = make_image(store, [{"a": b"1"}])
    assert store.tag(image_id, "busybox") == "busybox:latest"
    assert store.tag(image_id, "docker.io/library/busybox:1") == "busybox:1"
    assert store.tag(image_id, "localhost:5000/team/app:v2") == "localhost:5000/team/app:v2"
    assert store.tags_of(image_id) == ["busybox:1", "busybox:latest",
                                       "localhost:5000/team/app:v2"]
    with open(store.repositories_path) as f:
        assert json.load(f)["busybox:latest"] == image_id
    assert store.untag("busybox") == image_id
    assert store.tags_of(image_id) == ["busybox:1", "localhost:5000/team/app:v2"]
    with pytest.raises(NotFound):
        store.untag("busybox")


def test_tag_refuses_bad_names_and_missing_images(store):
    image_id, _ = make_image(store, [{"a": b"1"}])
    with pytest.raises(InvalidInput, match="invalid reference format"):
        store.tag(image_id, "bad name")
    with pytest.raises(InvalidInput, match="must be lowercase"):
        store.tag(image_id, "BusyBox")
    with pytest.raises(NotFound):
        store.tag("sha256:" + "f" * 64, "x")


def test_resolve_names_ids_and_prefixes(store):
    image_id, _ = make_image(store, [{"a": b"1"}], tag="john1/cowsay")
    hexid = image_id[7:]
    for ref in ("john1/cowsay", "john1/cowsay:latest", "docker.io/john1/cowsay",
                image_id, hexid, hexid[:12], hexid[:3], "sha256:" + hexid[:5]):
        assert store.resolve(ref) == image_id, ref


def test_resolve_missing_uses_dockers_message(store):
    with pytest.raises(NotFound, match=r"^Unable to find image 'busybox:latest' locally$"):
        store.resolve("busybox")
    with pytest.raises(NotFound, match=r"^Unable to find image 'john1/cowsay:v1' locally$"):
        store.resolve("docker.io/john1/cowsay:v1")


def test_resolve_ambiguous_prefix(store):
    # 17 images: by the pigeonhole principle two share their first hex digit.
    ids = [make_image(store, [{"f": str(i).encode()}])[0] for i in range(17)]
    first_digits = [i[7] for i in ids]
    shared = next(d for d in first_digits if first_digits.count(d) > 1)
    with pytest.raises(Conflict, match="ambiguous"):
        store.resolve(shared)


# ----------------------------------------------------------------------------- delete
def test_delete_keeps_layers_shared_with_other_images(store):
    base = {"bin/sh": b"shell"}
    first, first_layers = make_image(store, [base, {"one": b"1"}], tag="first", label="1")
    second, second_layers = make_image(store, [base, {"two": b"2"}], tag="second", label="2")
    shared = first_layers[0]
    removed = store.delete_image(first)
    assert removed == [first, first_layers[1]["diff_id"]]
    assert not store.has_image(first)
    assert store.tags_of(first) == []
    assert store.has_layer(shared["diff_id"]) and store.has_blob(shared["digest"])
    assert not store.has_layer(first_layers[1]["diff_id"])
    assert not store.has_blob(first_layers[1]["digest"])
    assert store.resolve("second") == second
    store.delete_image(second)
    assert os.listdir(store.layers_dir) == []
    assert os.listdir(store.blobs_dir) == []
    assert os.listdir(store.images_dir) == []


def test_collect_garbage_removes_unreferenced_content(store):
    image_id, _ = make_image(store, [{"a": b"1"}], tag="keep")
    orphan = store.add_layer(io.BytesIO(layer_tar({"orphan": b"o" * 50})))
    removed, freed = store.collect_garbage(grace_seconds=0)
    assert set(removed) == {orphan["digest"]}  # uncompressed: blob digest == diff_id
    assert not store.has_layer(orphan["diff_id"])
    assert store.layer_dirs(image_id)[0] and os.path.isdir(store.layer_dirs(image_id)[0])
    assert freed > 0
    stray = os.path.join(store.layerdb_dir, "ab" * 32 + ".json")
    open(stray, "w").close()
    store.collect_garbage(grace_seconds=0)
    assert not os.path.exists(stray)
    # scratch files: a dead command's are removed, a running one's are kept
    dead = subprocess.Popen(["true"])
    dead.wait()
    os.mkdir(os.path.join(store.tmp_dir, f"layer-{dead.pid}-abc"))
    open(os.path.join(store.tmp_dir, f"blob-{os.getpid()}-xyz"), "w").close()
    store.collect_garbage(grace_seconds=0)
    assert os.listdir(store.tmp_dir) == [f"blob-{os.getpid()}-xyz"]
    os.unlink(os.path.join(store.tmp_dir, f"blob-{os.getpid()}-xyz"))
    # and fresh content is kept by default (another command may be about to use it)
    orphan = store.add_layer(io.BytesIO(layer_tar({"orphan": b"o" * 50})))
    assert store.collect_garbage() == ([], 0)
    assert store.has_layer(orphan["diff_id"])


# ----------------------------------------------------------------------------- concurrency
def _tag_many(root, image_id, worker, count):
    os.environ["MINIDOCKER_ROOT"] = root
    store = Store(root)
    for i in range(count):
        store.tag(image_id, f"w{worker}:t{i}")


def _add_same_layer(root, data):
    Store(root).add_layer(io.BytesIO(data))


def _run_processes(target, args_list):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_taggers_do_not_lose_tags(store):
    image_id, _ = make_image(store, [{"a": b"1"}])
    _run_processes(_tag_many, [(store.root, image_id, w, 15) for w in range(6)])
    with open(store.repositories_path) as f:
        tags = json.load(f)
    assert len(tags) == 6 * 15
    assert set(tags.values()) == {image_id}


def test_concurrent_extraction_of_one_layer(store):
    data = gzip.compress(layer_tar({f"file{i}": os.urandom(2000) for i in range(200)}))
    _run_processes(_add_same_layer, [(store.root, data)] * 4)
    (layer,) = os.listdir(store.layers_dir)
    assert len(os.listdir(os.path.join(store.layers_dir, layer))) == 200
    assert os.listdir(store.tmp_dir) == []
    assert len(os.listdir(store.blobs_dir)) == 1


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("ref, name, familiar, registry, repository", [
    ("busybox", "docker.io/library/busybox", "busybox:latest", "docker.io", "library/busybox"),
    ("busybox:1.36", "docker.io/library/busybox", "busybox:1.36", "docker.io",
     "library/busybox"),
    ("john1/cowsay", "docker.io/john1/cowsay", "john1/cowsay:latest", "docker.io",
     "john1/cowsay"),
    ("localhost:5000/x:1", "localhost:5000/x", "localhost:5000/x:1", "localhost:5000", "x"),
    ("localhost/app", "localhost/app", "localhost/app:latest", "localhost", "app"),
    ("index.docker.io/library/debian:bookworm", "docker.io/library/debian",
     "debian:bookworm", "docker.io", "library/debian"),
    ("registry.example.com/a/b/c:v2", "registry.example.com/a/b/c",
     "registry.example.com/a/b/c:v2", "registry.example.com", "a/b/c"),
])
def test_reference_parsing(ref, name, familiar, registry, repository):
    parsed = reference.parse(ref)
    assert parsed.name == name
    assert parsed.familiar() == familiar == reference.familiar(ref)
    assert parsed.domain == registry
    assert parsed.repository == repository


def test_reference_with_digest():
    digest = "sha256:" + "ab" * 32
    parsed = reference.parse(f"ubuntu@{digest}")
    assert parsed.digest == digest and parsed.tag is None
    assert parsed.familiar() == f"ubuntu@{digest}"


@pytest.mark.parametrize("bad, message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("a b", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("-x", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal strings"),
])
def test_reference_errors_use_dockers_messages(bad, message):
    with pytest.raises(InvalidInput) as info:
        reference.parse(bad)
    assert str(info.value) == message


def test_canonical_json_is_stable():
    assert canonical_json({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


# ----------------------------------------------------------------------------- bootstrap
def test_bootstrap_busybox_image(store):
    from minidocker.image.bootstrap import bootstrap_busybox
    try:
        image_id = bootstrap_busybox(store)
    except Exception as e:  # noqa: BLE001 - only the missing-binary case skips
        if "static busybox" in str(e):
            pytest.skip(str(e))
        raise
    assert store.resolve("busybox") == image_id
    config = store.image_config(image_id)
    assert config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in config["config"]["Env"])
    assert config["history"][0]["created_by"] == "bootstrap busybox"
    (layer,) = store.layer_dirs(image_id)
    assert os.path.islink(os.path.join(layer, "bin/sh"))
    assert os.path.isfile(os.path.join(layer, "bin/busybox"))
    assert os.stat(os.path.join(layer, "tmp")).st_mode & 0o1777 == 0o1777
    assert os.listdir(store.tmp_dir) == []


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MINIDOCKER_TEST_DEBOOTSTRAP") != "1",
                    reason="downloads Debian packages: set MINIDOCKER_TEST_DEBOOTSTRAP=1")
def test_bootstrap_debian_image(store):
    from minidocker.image.bootstrap import bootstrap_debian
    mirror = os.environ.get("MINIDOCKER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    image_id = bootstrap_debian(store, mirror=mirror, log=subprocess.DEVNULL)
    assert store.resolve("debian:bookworm") == image_id
    (layer,) = store.layer_dirs(image_id)
    with open(os.path.join(layer, "etc/debian_version")) as f:
        assert f.read().startswith("12")
    assert os.listdir(os.path.join(layer, "proc")) == []
    assert store.image_config(image_id)["config"]["Cmd"] == ["bash"]


def test_bootstrap_is_reproducible_with_source_date_epoch(data_root, monkeypatch):
    """reproducible-builds.org's SOURCE_DATE_EPOCH: the same rootfs gives the same layer
    digest and the same image id, in two different stores."""
    from minidocker.image.bootstrap import bootstrap_busybox
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ids = []
    for name in ("one", "two"):
        store = Store(os.path.join(data_root, name))
        try:
            ids.append(bootstrap_busybox(store))
        except Exception as e:  # noqa: BLE001
            if "static busybox" in str(e):
                pytest.skip(str(e))
            raise
        assert store.image_config(ids[-1])["created"] == "2023-11-14T22:13:20Z"
    assert ids[0] == ids[1]
