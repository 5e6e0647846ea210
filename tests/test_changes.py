"""Reading an overlay upper dir: ``docker diff`` lines and the OCI layer tar (changes.py).

Each test makes real changes through a real overlay mount, then reads the upper dir.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess

import pytest

from conftest import needs_root
from helpers_layers import make_lower, overlay, sha256, tar_members, tar_names, tree
from minidocker.errors import InvalidInput
from minidocker.image.changes import (changes_from_upperdir, layer_tar_from_upperdir,
                                      lower_lookup)

pytestmark = [needs_root]


def diff_lines(upper, lowers):
    return [str(c) for c in changes_from_upperdir(upper, lowers)]


def layer_bytes(upper, lowers=None):
    out = io.BytesIO()
    layer_tar_from_upperdir(upper, out, lowers)
    return out.getvalue()


@pytest.fixture
def lower(tmp_path):
    base = make_lower(str(tmp_path / "lower"), {
        "root": None, "etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/motd": "hello\n",
        "d/old1": "1", "d/old2": "2", "d/sub/deep": "3", "bin/sh": "#!",
        "a.txt": "x", "a/b": "y",
    })
    os.chmod(os.path.join(base, "root"), 0o700)
    return base


def test_diff_shows_the_slide(tmp_path, lower):
    with overlay(tmp_path, [lower]) as (merged, upper):
        with open(os.path.join(merged, "root/.bash_history"), "w") as f:
            f.write("ls -la\n")
    assert diff_lines(upper, [lower]) == ["C /root", "A /root/.bash_history"]


def test_diff_delete_modify_and_order(tmp_path, lower):
    with overlay(tmp_path, [lower]) as (merged, upper):
        os.unlink(os.path.join(merged, "etc/motd"))
        with open(os.path.join(merged, "etc/passwd"), "a") as f:
            f.write("bob:x:1000:1000::/home/bob:/bin/sh\n")
        with open(os.path.join(merged, "a/new"), "w") as f:
            f.write("n")
        with open(os.path.join(merged, "a.txt"), "w") as f:
            f.write("changed")
        os.mkdir(os.path.join(merged, "new-dir"))
        with open(os.path.join(merged, "new-dir/f"), "w") as f:
            f.write("f")
    # A directory's contents come right after it (a depth-first walk), as in Docker:
    # /a, /a/new, /a.txt - not the plain string order /a, /a.txt, /a/new.
    assert diff_lines(upper, [lower]) == [
        "C /a", "A /a/new", "C /a.txt", "C /etc", "D /etc/motd", "C /etc/passwd",
        "A /new-dir", "A /new-dir/f"]


def test_diff_opaque_dir_lists_what_disappeared(tmp_path, lower):
    with overlay(tmp_path, [lower]) as (merged, upper):
        subprocess.run(["rm", "-rf", os.path.join(merged, "d")], check=True)
        os.mkdir(os.path.join(merged, "d"))
        with open(os.path.join(merged, "d/old1"), "w") as f:
            f.write("again")
        with open(os.path.join(merged, "d/fresh"), "w") as f:
            f.write("f")
    # overlay made d opaque; the old d/old2 and d/sub are gone, d/old1 was replaced
    assert os.getxattr(os.path.join(upper, "d"), "trusted.overlay.opaque") == b"y"
    assert diff_lines(upper, [lower]) == [
        "C /d", "A /d/fresh", "C /d/old1", "D /d/old2", "D /d/sub"]


def test_diff_deleted_directory_is_one_line(tmp_path, lower):
    with overlay(tmp_path, [lower]) as (merged, upper):
        subprocess.run(["rm", "-rf", os.path.join(merged, "d")], check=True)
    assert diff_lines(upper, [lower]) == ["D /d"]


def test_lower_lookup_follows_overlay_rules(tmp_path, lower):
    """Two lower layers: the top one deletes etc/motd and replaces d wholesale."""
    top = str(tmp_path / "top")
    with overlay(tmp_path / "make-top", [lower]) as (merged, upper):
        os.unlink(os.path.join(merged, "etc/motd"))
        subprocess.run(["rm", "-rf", os.path.join(merged, "d")], check=True)
        os.mkdir(os.path.join(merged, "d"))
    os.rename(upper, top)
    layers = [lower, top]
    assert lower_lookup(layers, "etc/passwd") is not None
    assert lower_lookup(layers, "etc/motd") is None
    assert lower_lookup(layers, "d") is not None
    assert lower_lookup(layers, "d/old1") is None
    # a container on top of both: deleting d/old1 is not a change (it was already gone)
    with overlay(tmp_path, layers) as (merged, upper):
        assert os.listdir(os.path.join(merged, "d")) == []
        os.unlink(os.path.join(merged, "etc/passwd"))
    assert diff_lines(upper, layers) == ["C /etc", "D /etc/passwd"]


def test_layer_tar_spells_whiteouts_the_oci_way(tmp_path, lower):
    with overlay(tmp_path, [lower]) as (merged, upper):
        os.unlink(os.path.join(merged, "etc/motd"))
        subprocess.run(["rm", "-rf", os.path.join(merged, "d")], check=True)
        os.mkdir(os.path.join(merged, "d"))
        with open(os.path.join(merged, "d/zz"), "w") as f:
            f.write("z")
        with open(os.path.join(merged, "etc/aaa"), "w") as f:
            f.write("a")
    data = layer_bytes(upper, [lower])
    names = tar_names(data)
    # depth-first, dir before contents; opaque marker right after its dir; whiteouts
    # before their siblings (image-spec: "whiteout files appear before sibling entries")
    assert names == ["d", "d/.wh..wh..opq", "d/zz", "etc", "etc/.wh.motd", "etc/aaa"]
    members = {m.name: m for m in tar_members(data)}
    for wh in ("d/.wh..wh..opq", "etc/.wh.motd"):
        assert members[wh].isreg() and members[wh].size == 0
    assert members["d"].isdir()
    # no overlay xattr, no user names leak into the layer
    for m in members.values():
        assert not any("overlay" in k for k in m.pax_headers)
        assert m.uname == "" and m.gname == ""


def test_layer_tar_round_trips_through_extraction(tmp_path, lower):
    """Extract the layer the way the image store does and stack it on the image: the
    result must be what the container saw."""
    from minidocker.image.unpack import apply_layer
    with overlay(tmp_path / "c", [lower]) as (merged, upper):
        os.unlink(os.path.join(merged, "etc/motd"))
        subprocess.run(["rm", "-rf", os.path.join(merged, "d")], check=True)
        os.makedirs(os.path.join(merged, "d/x"))
        with open(os.path.join(merged, "d/x/f"), "w") as f:
            f.write("f")
        os.link(os.path.join(merged, "d/x/f"), os.path.join(merged, "d/hard"))
        os.symlink("/etc/passwd", os.path.join(merged, "root/link"))
        os.mkfifo(os.path.join(merged, "root/fifo"))
        os.chown(os.path.join(merged, "root/link"), 7, 8, follow_symlinks=False)
        os.chmod(os.path.join(merged, "d/x/f"), 0o4755)
        expected = tree(merged)
    data = layer_bytes(upper, [lower])
    members = {m.name: m for m in tar_members(data)}
    assert members["d/x/f"].islnk() or members["d/hard"].islnk()
    extracted = str(tmp_path / "extracted")
    os.mkdir(extracted)
    apply_layer(io.BytesIO(data), extracted)
    with overlay(tmp_path / "check", [lower, extracted]) as (merged, _):
        assert tree(merged) == expected


def test_layer_tar_is_reproducible(tmp_path, lower, monkeypatch):
    """Same change made twice, in two containers at different times: with
    SOURCE_DATE_EPOCH the layers are byte for byte the same."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    layers = []
    for n in range(2):
        with overlay(tmp_path / f"c{n}", [lower]) as (merged, upper):
            with open(os.path.join(merged, "root/.bash_history"), "w") as f:
                f.write("ls\n")
            os.unlink(os.path.join(merged, "etc/motd"))
            os.utime(os.path.join(merged, "root/.bash_history"), (1800000000 + n, 1800000000 + n))
        layers.append(layer_bytes(upper, [lower]))
        assert layer_bytes(upper, [lower]) == layers[-1]  # same upper dir twice
    assert sha256(layers[0]) == sha256(layers[1])
    for m in tar_members(layers[0]):
        assert m.mtime <= 1700000000


def test_layer_tar_skips_sockets_keeps_fifos(tmp_path, lower):
    with overlay(tmp_path, [lower]) as (merged, upper):
        pass
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(upper, "sock"))
    finally:
        sock.close()
    os.mkfifo(os.path.join(upper, "fifo"))
    names = tar_names(layer_bytes(upper))
    assert names == ["fifo"]


def test_bad_source_date_epoch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    os.mkdir(tmp_path / "u")
    with pytest.raises(InvalidInput, match="SOURCE_DATE_EPOCH"):
        layer_bytes(str(tmp_path / "u"))


def test_capability_xattr_is_kept(tmp_path):
    upper = tmp_path / "u"
    upper.mkdir()
    ping = upper / "ping"
    ping.write_bytes(b"\x7fELF")
    # cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2)
    value = bytes.fromhex("0100000200200000000000000000000000000000")
    try:
        os.setxattr(str(ping), "security.capability", value)
    except OSError as e:
        pytest.skip(f"cannot set file capabilities here: {e}")
    (member,) = tar_members(layer_bytes(str(upper)))
    raw = member.pax_headers["SCHILY.xattr.security.capability"]
    assert raw.encode("utf-8", "surrogateescape") == value
