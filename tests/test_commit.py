"""``diff``, ``commit`` and ``export`` of real containers (the "Container layers" and
"docker commit" slides)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile

import pytest

from conftest import needs_root
from helpers_layers import (make_image, md_ok, minidocker, remove_all_containers,
                            store_snapshot)
from minidocker.image.store import Store

pytestmark = [needs_root]

RUN = ("run", "--network", "none")


@pytest.fixture
def store(data_root, busybox_rootfs):
    """A data root holding busybox:latest; every container removed afterwards."""
    s = Store()
    make_image(s, busybox_rootfs, tmp_dir=s.root)
    yield s
    remove_all_containers()


def test_diff_is_the_slide(store):
    md_ok(*RUN, "--name", "slide", "busybox", "sh", "-c", "echo ls > /root/.bash_history")
    # /etc/hosts, /etc/hostname, /etc/resolv.conf are the engine's mount points: not
    # changes of the container, as in Docker (its "init" layer)
    assert md_ok("diff", "slide") == "C /root\nA /root/.bash_history\n"


def test_diff_lists_adds_changes_deletes_in_dockers_order(store):
    md_ok(*RUN, "--name", "c", "busybox", "sh", "-c",
          "rm /etc/group; echo x >> /etc/passwd; mkdir -p /srv/a; echo y > /srv/a/b; "
          "rm -r /var/log")
    assert md_ok("diff", "c").splitlines() == [
        "C /etc", "D /etc/group", "C /etc/passwd", "A /srv", "A /srv/a", "A /srv/a/b",
        "C /var", "D /var/log"]


def test_diff_unknown_container(store):
    r = minidocker("diff", "nosuch")
    assert r.returncode == 125
    assert r.stderr == "minidocker: No such container: nosuch\n"


def test_commit_makes_an_image_that_runs_the_changed_filesystem(store):
    md_ok(*RUN, "--name", "cow", "-e", "GREETING=moo", "busybox", "sh", "-c",
          "mkdir -p /usr/games && printf '#!/bin/sh\\necho \"< $* >\"\\n' > /usr/games/cowsay && "
          "chmod +x /usr/games/cowsay && rm /etc/group")
    out = md_ok("commit", "-m", "install cowsay", "-a", "Jerome <j@example.com>", "cow")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out)
    image_id = out.strip()
    md_ok("tag", image_id[7:19], "cowsay")
    assert "cowsay" in md_ok("images", "cowsay")
    assert md_ok(*RUN, "--rm", "cowsay", "/usr/games/cowsay", "go", "docker") == "< go docker >\n"
    r = minidocker(*RUN, "--rm", "cowsay", "cat", "/etc/group")
    assert r.returncode == 1 and "No such file" in r.stderr + r.stdout

    config = store.image_config(image_id)
    parent = store.image_config(store.resolve("busybox"))
    assert config["rootfs"]["diff_ids"][:-1] == parent["rootfs"]["diff_ids"]
    assert len(config["history"]) == len(parent["history"]) + 1
    last = config["history"][-1]
    assert last["comment"] == "install cowsay" and last["author"] == "Jerome <j@example.com>"
    assert last["created_by"].startswith("sh -c mkdir -p /usr/games")
    assert config["author"] == "Jerome <j@example.com>"
    # the container's settings are the image's: its -e variable and its command
    assert "GREETING=moo" in config["config"]["Env"]
    assert config["config"]["Cmd"][:2] == ["sh", "-c"]
    # the layer is the change only: a whiteout for /etc/group, the new files
    layer = store.image_manifest(image_id)["layers"][-1]["digest"]
    with tarfile.open(fileobj=io.BytesIO(store.read_blob(layer))) as tar:
        names = tar.getnames()
    assert names == ["etc", "etc/.wh.group", "usr", "usr/games", "usr/games/cowsay"]


def test_commit_changes_and_repository(store):
    md_ok(*RUN, "--name", "c", "busybox", "true")
    changes = ['CMD ["cat", "/etc/motd"]', "ENV MOTD=hello", "WORKDIR /srv",
               "USER nobody", "EXPOSE 8080", "LABEL team=lab", 'VOLUME ["/data"]',
               'ENTRYPOINT ["/bin/env"]']
    args = [a for c in changes for a in ("-c", c)]
    image_id = md_ok("commit", *args, "c", "lab/app:v2").strip()
    assert store.resolve("lab/app:v2") == image_id
    cfg = store.image_config(image_id)["config"]
    assert cfg["Cmd"] == ["cat", "/etc/motd"]
    assert cfg["Entrypoint"] == ["/bin/env"]
    assert "MOTD=hello" in cfg["Env"]
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "nobody"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["Labels"] == {"team": "lab"} and cfg["Volumes"] == {"/data": {}}
    out = md_ok(*RUN, "--rm", "--entrypoint", "sh", "lab/app:v2", "-c", 'echo "$MOTD $(pwd) $(id -u)"')
    assert out == "hello /srv 65534\n"


def test_commit_running_container(store):
    cid = md_ok(*RUN, "-d", "busybox", "sh", "-c",
                "echo started > /started; while true; do sleep 1; done").strip()
    try:
        for _ in range(100):
            if "A /started" in md_ok("diff", cid):
                break
            subprocess.run(["sleep", "0.05"])
        image_id = md_ok("commit", cid, "snapshot:1").strip()
        # the commit froze and thawed it: it is still running, not left frozen
        assert md_ok("ps", "-q", "--no-trunc").split() == [cid]
        from minidocker.kernel import cgroups
        assert not cgroups.open_cgroup(f"minidocker/{cid}").is_frozen()
        assert md_ok(*RUN, "--rm", "snapshot:1", "cat", "/started") == "started\n"
        assert store.resolve("snapshot:1") == image_id
    finally:
        minidocker("rm", "-f", cid)


def test_commit_is_reproducible(store, monkeypatch):
    """The same change in two containers, committed at different times: with
    SOURCE_DATE_EPOCH the layers are identical (same digest, stored once)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ids = []
    for name in ("one", "two"):
        md_ok(*RUN, "--name", name, "busybox", "sh", "-c",
              "echo same > /root/file; rm /etc/group; touch -d '2030-01-01' /root/file")
        ids.append(md_ok("commit", name).strip())
    layers = [store.image_config(i)["rootfs"]["diff_ids"][-1] for i in ids]
    assert layers[0] == layers[1]
    # and committing the same container twice gives the same layer, even without it
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    again = [store.image_config(md_ok("commit", "one").strip())["rootfs"]["diff_ids"][-1]
             for _ in range(2)]
    assert again[0] == again[1]


def test_bad_commit_leaves_nothing(store, data_root):
    md_ok(*RUN, "--name", "c", "busybox", "sh", "-c", "echo x > /x")
    before = store_snapshot(data_root)
    r = minidocker("commit", "-c", "FROB x", "c")
    assert r.returncode == 125 and r.stderr == "minidocker: FROB is not a valid change command\n"
    r = minidocker("commit", "c", "Bad:Name")
    assert r.returncode == 125 and r.stderr.startswith("minidocker: ")
    r = minidocker("commit", "nosuch")
    assert r.returncode == 125 and r.stderr == "minidocker: No such container: nosuch\n"
    assert store_snapshot(data_root) == before
    # a failure half-way through the layer (an overlay feature the tar cannot express):
    # the partial layer the store received is removed again
    md_ok(*RUN, "--name", "redirected", "busybox", "sh", "-c", "mkdir -p /zz/a; echo x > /zz/a/f")
    cid = md_ok("inspect", "-f", "{{.Id}}", "redirected").strip()
    upper = os.path.join(data_root, "containers", cid, "upper")
    os.setxattr(os.path.join(upper, "zz", "a"), "trusted.overlay.redirect", b"/elsewhere")
    before = store_snapshot(data_root)
    r = minidocker("commit", "redirected")
    assert r.returncode == 125
    assert "overlay 'redirect' entries are not supported" in r.stderr
    assert store_snapshot(data_root) == before


def test_export_is_the_flat_filesystem(store, tmp_path):
    md_ok(*RUN, "--name", "c", "busybox", "sh", "-c", "echo x > /root/new; rm /etc/group")
    out = tmp_path / "c.tar"
    md_ok("export", "-o", out, "c")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("root/new").read() == b"x\n"
    assert "bin/busybox" in names and "etc/passwd" in names
    assert "etc/group" not in names
    assert not any(".wh." in n for n in names)
    # its counterpart: import makes it an image again
    image_id = md_ok("import", out, "flat:1").strip()
    assert md_ok(*RUN, "--rm", image_id, "cat", "/root/new") == "x\n"
    assert len(store.image_config(image_id)["rootfs"]["diff_ids"]) == 1


def test_export_running_container(store, tmp_path):
    cid = md_ok(*RUN, "-d", "busybox", "sh", "-c", "echo live > /live; exec sleep 600").strip()
    try:
        for _ in range(100):
            if "A /live" in md_ok("diff", cid):
                break
            subprocess.run(["sleep", "0.05"])
        r = minidocker("export", cid, text=False)
        assert r.returncode == 0, r.stderr
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            assert tar.extractfile("live").read() == b"live\n"
            assert "bin/busybox" in tar.getnames()
    finally:
        minidocker("rm", "-f", cid)


def test_unchanged_container_commits_dockers_empty_layer(store):
    """An empty change is the same 1024 zero bytes Docker writes (Go's archive/tar ends
    a tar with two zero blocks, without padding): the well-known empty layer."""
    md_ok("create", "--name", "untouched", "--network", "none", "busybox", "true")
    image_id = md_ok("commit", "untouched").strip()
    assert store.image_config(image_id)["rootfs"]["diff_ids"][-1] == \
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
