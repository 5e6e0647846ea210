"""The interop matrix: what minidocker pushes, skopeo and podman read (and podman runs);
what skopeo and podman push (OCI and Docker manifests, multi-arch indexes, gzip/zstd/
plain layers), minidocker pulls and runs. Against Debian's Distribution registry and
against the embedded one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess

import pytest

from conftest import needs_root
from helpers_registry import make_image, minidocker, registry_of_kind, tar_bytes, write_oci_layout
from peers import Podman, skopeo

pytestmark = [needs_root, pytest.mark.interop]


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(tmp_path / "minidocker-config.json"))


@pytest.fixture(params=["distribution", "embedded"])
def reg(request, tmp_path):
    with registry_of_kind(request.param, tmp_path) as r:
        yield r


@pytest.fixture
def podman(tmp_path):
    p = Podman.or_skip(storage="vfs", prefix="mdreg-podman-")
    yield p
    p.cleanup()


def run_in_minidocker(root, ref, *cmd):
    """``minidocker run --rm --network none REF CMD``; the image is already pulled."""
    r = minidocker("run", "--rm", "--network", "none", ref, *cmd, root=root, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def pull_with_cli(root, ref):
    r = minidocker("pull", ref, root=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == ref
    return r.stdout


def test_skopeo_and_podman_read_what_minidocker_pushed(reg, tmp_path, busybox_rootfs, podman):
    from minidocker.image.store import Store
    from minidocker.registry import client
    store = Store(str(tmp_path / "source"))
    ref = f"{reg.host}/john1/cowsay:v1"
    image_id = make_image(store, ref, busybox_rootfs, [{"etc/motd": "moo from minidocker\n"}],
                          cmd=["cat", "/etc/motd"])
    digest = client.push(ref, store, io.StringIO())
    ours = store.image_manifest(image_id)

    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'oci'}:v1")
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest          # copied unchanged
    copied = json.loads((tmp_path / "oci" / "blobs" / "sha256" / digest[7:]).read_bytes())
    assert [x["digest"] for x in copied["layers"]] == [x["digest"] for x in ours["layers"]]
    assert copied["config"]["digest"] == image_id

    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"dir:{tmp_path / 'dir'}")
    for layer in ours["layers"]:
        data = (tmp_path / "dir" / layer["digest"][7:]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]

    podman("pull", "--tls-verify=false", ref)
    r = podman("run", "--rm", "--network", "none", ref)
    assert r.stdout == "moo from minidocker\n"


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_minidocker_pulls_and_runs_what_skopeo_pushed(fmt, reg, tmp_path, busybox_rootfs):
    # OCI allows zstd layers; Docker's schema2 knows only gzip and plain tars
    second = "zstd" if fmt == "oci" else None
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, "v1", {_host_arch(): [
        ("gzip", tar_bytes({}, busybox_rootfs)),
        (second, tar_bytes({"etc/motd": f"made by hand, pushed by skopeo as {fmt}\n"})),
        (None, tar_bytes({"etc/plain": "an uncompressed layer\n"})),
    ]})
    ref = f"{reg.host}/lab/skopeo-{fmt}:v1"
    args = ["--format", "v2s2"] if fmt == "v2s2" else []
    skopeo("copy", "--dest-tls-verify=false", *args, f"oci:{layout}:v1", f"docker://{ref}")
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)
    assert raw["mediaType"] == ("application/vnd.oci.image.manifest.v1+json" if fmt == "oci"
                                else "application/vnd.docker.distribution.manifest.v2+json")
    root = str(tmp_path / "md")
    out = pull_with_cli(root, ref)
    assert out.count("Pull complete") == 3
    from minidocker.image.store import Store
    assert Store(root).resolve(ref) == raw["config"]["digest"]     # id = config digest
    assert run_in_minidocker(root, ref, "cat", "/etc/motd", "/etc/plain") == (
        f"made by hand, pushed by skopeo as {fmt}\nan uncompressed layer\n")


def _host_arch():
    from minidocker.image.store import host_architecture
    return host_architecture()


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_multi_arch_index_pulls_this_machines_platform(fmt, reg, tmp_path, busybox_rootfs):
    host = _host_arch()
    other = "s390x" if host != "s390x" else "amd64"
    base = tar_bytes({}, busybox_rootfs)
    layout = str(tmp_path / "layout")
    write_oci_layout(layout, "multi", {
        other: [("gzip", base), ("gzip", tar_bytes({"etc/arch": f"{other}\n"}))],
        host: [("gzip", base), ("gzip", tar_bytes({"etc/arch": f"{host}\n"}))],
    }, index=True)
    ref = f"{reg.host}/lab/multi-{fmt}:latest"
    args = ["--format", "v2s2"] if fmt == "v2s2" else []
    skopeo("copy", "--all", "--dest-tls-verify=false", *args, f"oci:{layout}:multi", f"docker://{ref}")
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)
    assert raw["mediaType"] == ("application/vnd.oci.image.index.v1+json" if fmt == "oci" else
                                "application/vnd.docker.distribution.manifest.list.v2+json")
    root = str(tmp_path / "md")
    out = pull_with_cli(root, ref)
    index_digest = "sha256:" + hashlib.sha256(
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout.encode()).hexdigest()
    assert f"Digest: {index_digest}" in out
    assert run_in_minidocker(root, ref, "cat", "/etc/arch") == f"{host}\n"
    # another platform on request (it would not run here: its layers are just pulled)
    from minidocker.image.store import Store
    other_root = str(tmp_path / "md-other")
    r = minidocker("pull", "--platform", f"linux/{other}", ref, root=other_root)
    assert r.returncode == 0, r.stderr
    store = Store(other_root)
    image_id = store.resolve(ref)
    assert store.image_config(image_id)["architecture"] == other
    assert open(os.path.join(store.layer_dirs(image_id)[-1], "etc", "arch")).read() == f"{other}\n"


def test_index_without_this_platform_is_refused(tmp_path, busybox_rootfs):
    from helpers_registry import embedded
    host = _host_arch()
    layout = str(tmp_path / "layout")
    others = [a for a in ("s390x", "ppc64le", "riscv64") if a != host][:2]
    write_oci_layout(layout, "x", {a: [("gzip", tar_bytes({"etc/arch": a}))] for a in others},
                     index=True)
    with embedded(tmp_path) as reg:
        skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:x",
               f"docker://{reg.host}/lab/foreign:x")
        r = minidocker("pull", f"{reg.host}/lab/foreign:x", root=str(tmp_path / "md"))
    assert r.returncode == 125
    assert r.stderr.strip() == (f"minidocker: no matching manifest for linux/{host} "
                                "in the manifest list entries")


def test_minidocker_pulls_and_runs_what_podman_pushed(reg, tmp_path, busybox_rootfs, podman):
    tar = subprocess.run(["tar", "-C", busybox_rootfs, "-c", "."], capture_output=True,
                         check=True).stdout
    podman("import", "-", "localhost/bb-import", input=tar)
    ref = f"{reg.host}/lab/from-podman:v1"
    podman("push", "--tls-verify=false", "localhost/bb-import", f"docker://{ref}")
    root = str(tmp_path / "md")
    pull_with_cli(root, ref)
    assert run_in_minidocker(root, ref, "echo", "hello from podman's push") == "hello from podman's push\n"
