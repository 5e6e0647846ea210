"""What a user sees from the image verbs: bootstrap, import, images, tag, rmi, history,
image ls/rm/prune/inspect -- run as commands, compared with Docker's output."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile

import pytest

from conftest import needs_root

pytestmark = needs_root

SHORT_ID = r"[0-9a-f]{12}"


def md(*args, input=None, check=True):
    """Run ``minidocker ARGS`` (the data root comes from $MINIDOCKER_ROOT)."""
    result = subprocess.run([sys.executable, "-m", "minidocker", *args], input=input,
                            capture_output=True, timeout=120)
    result.out = result.stdout.decode()
    result.err = result.stderr.decode()
    if check:
        assert result.returncode == 0, (args, result.out, result.err)
    return result


def rootfs_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def busybox_image(data_root):
    result = md("bootstrap", "busybox")
    if result.returncode != 0 and "static busybox" in result.err:
        pytest.skip(result.err.strip())
    image_id = result.out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    return image_id


def test_bootstrap_then_images(busybox_image):
    out = md("images").out.splitlines()
    assert out[0] == "REPOSITORY   TAG       IMAGE ID       CREATED                  SIZE"
    assert re.fullmatch(rf"busybox      latest    {busybox_image[7:19]}   "
                        r"(Less than a second|\d+ seconds?|About a minute) ago\s+[\d.]+MB",
                        out[1]), out[1]
    assert len(out) == 2


def test_images_quiet_no_trunc_and_repository_filter(busybox_image):
    md("tag", "busybox", "john1/cowsay:v1")
    md("tag", "busybox", "john1/cowsay")
    assert md("images", "-q").out == busybox_image[7:19] + "\n"  # one id, not one per tag
    assert md("images", "-q", "--no-trunc").out == busybox_image + "\n"
    rows = md("images", "john1/cowsay").out.splitlines()[1:]
    assert [r.split()[:2] for r in rows] == [["john1/cowsay", "latest"], ["john1/cowsay", "v1"]]
    rows = md("images", "john1/cowsay:v1").out.splitlines()[1:]
    assert [r.split()[:2] for r in rows] == [["john1/cowsay", "v1"]]
    assert md("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "-f",
              "reference=john1/*:v*").out == f"john1/cowsay:v1 {busybox_image[7:19]}\n"
    assert md("images", "nothing").out.splitlines() == [
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE"]


def test_dangling_filter_and_none_rows(busybox_image, tmp_path):
    image_id = md("import", "-", input=rootfs_tar({"x": b"1"})).out.strip()
    rows = md("images").out.splitlines()[1:]
    assert any(r.startswith("<none>       <none>    " + image_id[7:19]) for r in rows), rows
    assert md("images", "-q", "-f", "dangling=true").out.split() == [image_id[7:19]]
    assert md("images", "-q", "-f", "dangling=false").out.split() == [busybox_image[7:19]]


def test_tag_errors(busybox_image):
    result = md("tag", "nosuch", "x", check=False)
    assert result.returncode == 125
    assert result.err.strip() == "minidocker: No such image: nosuch:latest"
    result = md("tag", "busybox", "Bad:Name", check=False)
    assert result.returncode == 125
    assert "invalid reference format" in result.err


def test_rmi_untags_then_deletes(busybox_image):
    md("tag", "busybox", "mine:1")
    assert md("rmi", "mine:1").out == "Untagged: mine:1\n"
    out = md("rmi", "busybox").out.splitlines()
    assert out[0] == "Untagged: busybox:latest"
    assert out[1] == f"Deleted: {busybox_image}"
    assert all(re.fullmatch(r"Deleted: sha256:[0-9a-f]{64}", line) for line in out[1:])
    assert md("images", "-q").out == ""
    root = os.environ["MINIDOCKER_ROOT"]
    assert os.listdir(os.path.join(root, "layers")) == []
    assert os.listdir(os.path.join(root, "blobs/sha256")) == []


def test_rmi_by_id_with_tags_in_several_repositories(busybox_image):
    md("tag", "busybox", "other")
    result = md("rmi", busybox_image[7:19], check=False)
    assert result.returncode == 1
    assert result.err.strip() == (f"minidocker: conflict: unable to delete {busybox_image[7:19]} "
                                  "(must be forced) - image is referenced in multiple repositories")
    out = md("rmi", "-f", busybox_image[7:19]).out.splitlines()
    assert out[:2] == ["Untagged: busybox:latest", "Untagged: other:latest"]
    assert out[2] == f"Deleted: {busybox_image}"


def test_rmi_last_tag_takes_the_repositorys_digest_references(busybox_image):
    from minidocker.image.store import Store
    digest_ref = "busybox@sha256:" + "d" * 64
    Store().tag(busybox_image, digest_ref)
    Store().tag(busybox_image, "other:1")
    assert md("rmi", "busybox").out.splitlines() == [
        "Untagged: busybox:latest", f"Untagged: {digest_ref}"]
    assert md("images", "-q").out.split() == [busybox_image[7:19]]  # other:1 keeps it
    # a digest reference shows as the DIGEST of its repository's row, or as a row
    Store().tag(busybox_image, "other@sha256:" + "e" * 64)
    Store().tag(busybox_image, "pinned@sha256:" + "f" * 64)
    rows = [r.split()[:4] for r in md("images", "--digests").out.splitlines()]
    assert rows == [["REPOSITORY", "TAG", "DIGEST", "IMAGE"],
                    ["other", "1", "sha256:" + "e" * 64, busybox_image[7:19]],
                    ["pinned", "<none>", "sha256:" + "f" * 64, busybox_image[7:19]]]
    Store().untag("pinned@sha256:" + "f" * 64)
    out = md("rmi", "other:1").out.splitlines()
    assert out[:3] == ["Untagged: other:1", "Untagged: other@sha256:" + "e" * 64,
                       f"Deleted: {busybox_image}"]


def test_rmi_missing_goes_on_and_exits_1(busybox_image):
    md("tag", "busybox", "b2")
    result = md("rmi", "nosuch", "b2", check=False)
    assert result.returncode == 1
    assert result.err.strip() == "minidocker: No such image: nosuch:latest"
    assert result.out == "Untagged: b2:latest\n"


def test_rmi_refuses_image_used_by_a_container(busybox_image, data_root):
    """The engine tells which containers use an image; rmi refuses unless -f, and with -f
    only untags (the container keeps its layers)."""
    from minidocker.errors import Conflict
    from minidocker.image import tags
    from minidocker.image.store import Store
    users = [("c0ffee" * 10, False)]

    def containers_using(image_id):
        return users

    store = Store()
    with pytest.raises(Conflict, match=r'unable to remove repository reference "busybox" '
                                       r"\(must force\) - container c0ffeec0ffee is using"):
        tags.remove_image(store, "busybox", containers_using)
    with pytest.raises(Conflict, match="being used by stopped container c0ffeec0ffee"):
        tags.remove_image(store, busybox_image, containers_using)
    users[0] = ("c0ffee" * 10, True)
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image is being used by "
                                       "running container c0ffeec0ffee"):
        tags.remove_image(store, busybox_image, containers_using, force=True)
    assert tags.remove_image(store, "busybox", containers_using, force=True) == \
        [{"Untagged": "busybox:latest"}]
    assert store.has_image(busybox_image)
    # prune leaves it too, while the container exists
    assert tags.prune_images(store, containers_using)["ImagesDeleted"] == []
    assert store.has_image(busybox_image)


def test_history(busybox_image):
    out = md("history", "busybox").out.splitlines()
    assert out[0] == "IMAGE          CREATED                  CREATED BY          SIZE      COMMENT"
    assert re.fullmatch(rf"{busybox_image[7:19]}   .* ago   bootstrap busybox   [\d.]+MB", out[1])
    assert md("history", "-q", "busybox").out == busybox_image[7:19] + "\n"
    result = md("history", "nosuch", check=False)
    assert result.returncode == 125
    assert result.err.strip() == "minidocker: No such image: nosuch:latest"


def test_import_file_compressed_and_stdin(data_root, tmp_path):
    tar = rootfs_tar({"etc/hello": b"hi\n", "bin/x": b"#!/bin/sh\n"})
    (tmp_path / "fs.tar.gz").write_bytes(gzip.compress(tar))
    (tmp_path / "fs.tar.xz").write_bytes(lzma.compress(tar))
    gz_id = md("import", str(tmp_path / "fs.tar.gz"), "fromgz:1").out.strip()
    xz_id = md("import", "-m", "from xz", str(tmp_path / "fs.tar.xz"), "fromxz").out.strip()
    stdin_id = md("import", "-c", "CMD [\"/bin/x\"]", "-c", "ENV A=1 B=two", "-c",
                  "WORKDIR /etc", "-", "fromstdin", input=tar).out.strip()
    for image_id in (gz_id, xz_id, stdin_id):
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    (info,) = json.loads(md("image", "inspect", "fromstdin").out)
    assert info["Id"] == stdin_id
    assert info["RepoTags"] == ["fromstdin:latest"]
    assert info["Config"] == {"Cmd": ["/bin/x"], "Env": ["A=1", "B=two"], "WorkingDir": "/etc"}
    assert info["Comment"] == "Imported from -"
    layer_dir = info["GraphDriver"]["Data"]["LowerDir"]
    assert os.path.isfile(os.path.join(layer_dir, "etc/hello"))
    assert layer_dir.endswith(info["RootFS"]["Layers"][0][7:])
    assert md("image", "inspect", "-f", "{{.Comment}}", "fromxz").out == "from xz\n"
    # the same content, whatever the compression, is one layer on disk
    root = os.environ["MINIDOCKER_ROOT"]
    (layer,) = os.listdir(os.path.join(root, "layers"))
    with open(os.path.join(root, "layers", layer, "etc/hello")) as f:
        assert f.read() == "hi\n"
    history = md("history", "fromgz:1").out.splitlines()[1]
    assert history.endswith(f"Imported from {tmp_path / 'fs.tar.gz'}")


def test_import_errors_leave_nothing(data_root, tmp_path):
    root = os.environ["MINIDOCKER_ROOT"]
    (tmp_path / "bad.tar").write_bytes(rootfs_tar({"../escape": b"x"}))
    result = md("import", str(tmp_path / "bad.tar"), "bad", check=False)
    assert result.returncode == 125
    assert "leaves the layer" in result.err
    result = md("import", str(tmp_path / "missing.tar"), check=False)
    assert result.returncode == 125 and "no such file" in result.err
    result = md("import", "-c", "FROBNICATE x", "-", input=rootfs_tar({"a": b""}), check=False)
    assert result.returncode == 125 and "FROBNICATE is not a valid change command" in result.err
    assert os.listdir(os.path.join(root, "layers")) == []
    assert os.listdir(os.path.join(root, "images")) == []
    assert md("images", "-q").out == ""


def test_image_group_ls_rm_prune(busybox_image):
    dangling = md("import", "-", input=rootfs_tar({"d": b"dangling"})).out.strip()
    assert md("image", "ls", "-q").out.split() == sorted(
        [dangling[7:19], busybox_image[7:19]], key=lambda i: i != dangling[7:19])
    out = md("image", "prune", "-f").out.splitlines()
    assert out[0] == "Deleted Images:"
    assert f"deleted: {dangling}" in out
    assert re.fullmatch(r"Total reclaimed space: [\d.]+k?B", out[-1]), out[-1]
    assert md("image", "ls", "-q").out.split() == [busybox_image[7:19]]
    # nothing more to prune
    assert md("image", "prune", "-f").out == "Total reclaimed space: 0B\n"
    # without -f it asks, and "n" keeps everything
    result = md("image", "prune", "-a", input=b"n\n")
    assert "WARNING! This will remove all images without at least one container" in result.out
    assert md("image", "ls", "-q").out.split() == [busybox_image[7:19]]
    assert md("image", "prune", "-a", "-f").out.startswith(
        "Deleted Images:\nuntagged: busybox:latest\n")
    assert md("image", "rm", "nosuch", check=False).returncode == 1


def test_image_inspect_missing(data_root):
    result = md("image", "inspect", "nosuch", check=False)
    assert result.returncode == 1
    assert result.out.strip() == "[]"
    assert result.err.strip() == "Error: No such image: nosuch"


def test_helpers_match_docker_units():
    from minidocker.cli.images import ellipsis, human_duration, human_size, table
    assert [human_size(n) for n in (0, 999, 1000, 2_050_000, 4_261_000, 123_456_789_000)] == \
        ["0B", "999B", "1kB", "2.05MB", "4.26MB", "123GB"]
    assert [human_duration(s) for s in (0.5, 1, 30, 90, 240, 3600, 7200, 3 * 86400,
                                        20 * 86400, 90 * 86400, 800 * 86400)] == \
        ["Less than a second", "1 second", "30 seconds", "About a minute", "4 minutes",
         "About an hour", "2 hours", "3 days", "2 weeks", "3 months", "2 years"]
    assert ellipsis("x" * 50, 45) == "x" * 44 + "…"
    assert table([["A", "BB"], ["long-value-here", "c"]]) == "A                 BB\nlong-value-here   c"


def test_intermediate_images_hidden_without_all(data_root):
    """An untagged image whose layers start another image's (a build step) is hidden by
    ``images`` and kept by ``image prune``; ``-a`` shows it."""
    sys.path.insert(0, os.path.dirname(__file__))
    from test_image_store import make_image
    from minidocker.image.store import Store
    store = Store()
    parent, _ = make_image(store, [{"a": b"1"}], label="parent")
    child, _ = make_image(store, [{"a": b"1"}, {"b": b"2"}], tag="child", label="child")
    assert md("images", "-q").out.split() == [child[7:19]]
    assert sorted(md("images", "-a", "-q").out.split()) == sorted([child[7:19], parent[7:19]])
    assert md("image", "prune", "-f").out == "Total reclaimed space: 0B\n"
    assert store.has_image(parent)
    md("rmi", "child")
    # now the former parent is a dangling image of its own
    assert md("images", "-q").out.split() == [parent[7:19]]
    assert f"deleted: {parent}" in md("image", "prune", "-f").out.splitlines()


def test_parallel_imports_share_one_layer(data_root, tmp_path):
    """Several commands at once: every image recorded, every tag kept, one layer dir."""
    tar = tmp_path / "fs.tar"
    tar.write_bytes(gzip.compress(rootfs_tar({f"f{i}": os.urandom(5000) for i in range(100)})))
    procs = [subprocess.Popen([sys.executable, "-m", "minidocker", "import", str(tar), f"p{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(5)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 5, results
    rows = md("images", "--format", "{{.Repository}}").out.split()
    assert sorted(rows) == [f"p{i}" for i in range(5)]
    root = os.environ["MINIDOCKER_ROOT"]
    assert len(os.listdir(os.path.join(root, "layers"))) == 1
    assert os.listdir(os.path.join(root, "tmp")) == []
