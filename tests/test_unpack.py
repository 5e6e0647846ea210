"""Applying layer tars: OCI whiteouts become overlay whiteouts, and hostile tars are refused.

Every tar here is built by the test with :mod:`tarfile`, so each case shows exactly the
entries that are (or are not) allowed.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile

import pytest

from conftest import needs_root
from minidocker.errors import InvalidInput
from minidocker.image import unpack
from minidocker.image.store import Store

pytestmark = needs_root


# ----------------------------------------------------------------------------- helpers
def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, mtime=1_600_000_000,
          linkname="", devmajor=0, devminor=0, pax=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    if pax:
        info.pax_headers = pax
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def make_tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def apply(tmp_path, tar_bytes, name="layer"):
    dest = tmp_path / name
    dest.mkdir()
    unpack.apply_layer(io.BytesIO(tar_bytes), str(dest))
    return dest


def assert_refused(tmp_path, tar_bytes, match):
    store = Store(str(tmp_path / "root"))
    with pytest.raises(InvalidInput, match=match):
        store.add_layer(io.BytesIO(tar_bytes))
    # Nothing half-made: no layer directory, no scratch left in $ROOT/tmp.
    assert os.listdir(store.layers_dir) == []
    assert os.listdir(store.tmp_dir) == []


# ----------------------------------------------------------------------------- contents
def test_files_dirs_links_keep_their_metadata(tmp_path):
    tar = make_tar(
        entry("./etc", tarfile.DIRTYPE, mode=0o755, mtime=1_500_000_000),
        entry("./etc/motd", data=b"hello\n", mode=0o640, uid=1000, gid=100),
        entry("./bin/prog", data=b"#!/bin/sh\n", mode=0o4755),
        entry("./bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"),
        entry("./etc/motd.again", tarfile.LNKTYPE, linkname="etc/motd"),
        entry("./run/fifo", tarfile.FIFOTYPE, mode=0o600),
    )
    dest = apply(tmp_path, tar)
    motd = os.lstat(dest / "etc/motd")
    assert (dest / "etc/motd").read_bytes() == b"hello\n"
    assert stat.S_IMODE(motd.st_mode) == 0o640
    assert (motd.st_uid, motd.st_gid) == (1000, 100)
    assert motd.st_mtime == 1_600_000_000
    # setuid survives (chmod comes after chown, which would clear it)
    assert stat.S_IMODE(os.lstat(dest / "bin/prog").st_mode) == 0o4755
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.lstat(dest / "etc/motd.again").st_ino == motd.st_ino
    assert motd.st_nlink == 2
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)
    # a directory's mtime is set after its children were written
    assert os.lstat(dest / "etc").st_mtime == 1_500_000_000


def test_later_entry_replaces_earlier_one(tmp_path):
    tar = make_tar(entry("a", data=b"old"), entry("a", data=b"new"),
                   entry("d", tarfile.DIRTYPE), entry("d/x", data=b"x"),
                   entry("d", tarfile.SYMTYPE, linkname="elsewhere"))
    dest = apply(tmp_path, tar)
    assert (dest / "a").read_bytes() == b"new"
    assert os.readlink(dest / "d") == "elsewhere"


def test_user_xattrs_are_applied_but_overlay_ones_are_not(tmp_path):
    tar = make_tar(entry("f", data=b"x", pax={"SCHILY.xattr.user.color": "blue",
                                               "SCHILY.xattr.trusted.overlay.opaque": "y"}))
    dest = apply(tmp_path, tar)
    assert os.getxattr(dest / "f", "user.color") == b"blue"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "f")


# ----------------------------------------------------------------------------- whiteouts
def test_whiteout_becomes_overlay_char_device(tmp_path):
    dest = apply(tmp_path, make_tar(entry("etc/.wh.motd")))
    st = os.lstat(dest / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not os.path.lexists(dest / "etc/.wh.motd")


def test_opaque_whiteout_marks_directory(tmp_path):
    dest = apply(tmp_path, make_tar(entry("var/cache", tarfile.DIRTYPE),
                                    entry("var/cache/.wh..wh..opq"),
                                    entry("var/cache/new", data=b"n")))
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/cache/new").read_bytes() == b"n"
    assert not os.path.lexists(dest / "var/cache/.wh..wh..opq")


def test_whiteout_does_not_hide_a_file_of_the_same_layer(tmp_path):
    # layer.md: "Files that are present in the same layer as a whiteout file can only
    # be hidden by whiteout files in subsequent layers."
    dest = apply(tmp_path, make_tar(entry("keep", data=b"mine"), entry(".wh.keep")))
    assert (dest / "keep").read_bytes() == b"mine"


def test_overlay_honours_the_extracted_whiteouts(tmp_path):
    """The real check: stack the layers with overlayfs and look at the merged view."""
    lower = apply(tmp_path, make_tar(entry("gone", data=b"1"), entry("dir/old", data=b"2"),
                                     entry("stay", data=b"3")), "lower")
    upper = apply(tmp_path, make_tar(entry(".wh.gone"), entry("dir", tarfile.DIRTYPE),
                                     entry("dir/.wh..wh..opq"), entry("dir/new", data=b"4")),
                  "upper")
    merged = tmp_path / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={upper}:{lower}", str(merged)], check=True)
    try:
        assert sorted(os.listdir(merged)) == ["dir", "stay"]
        assert os.listdir(merged / "dir") == ["new"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


# ----------------------------------------------------------------------------- safety
def test_parent_dir_path_is_refused(tmp_path):
    assert_refused(tmp_path, make_tar(entry("../escaped", data=b"x")), "leaves the layer")
    assert not (tmp_path / "escaped").exists()


def test_nested_parent_dir_path_is_refused(tmp_path):
    assert_refused(tmp_path, make_tar(entry("a/b/../../../escaped", data=b"x")),
                   "leaves the layer")


def test_absolute_path_is_refused(tmp_path):
    target = tmp_path / "abs-target"
    assert_refused(tmp_path, make_tar(entry(str(target), data=b"x")), "absolute path")
    assert not target.exists()


def test_writing_through_a_symlink_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = make_tar(entry("evil", tarfile.SYMTYPE, linkname=str(outside)),
                   entry("evil/pwned", data=b"x"))
    assert_refused(tmp_path, tar, "is a symlink")
    assert os.listdir(outside) == []


def test_relative_symlink_escape_is_refused(tmp_path):
    tar = make_tar(entry("up", tarfile.SYMTYPE, linkname="../../../../.."),
                   entry("up/tmp/pwned", data=b"x"))
    assert_refused(tmp_path, tar, "is a symlink")


def test_hardlink_out_of_the_layer_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host")
    assert_refused(tmp_path, make_tar(entry("link", tarfile.LNKTYPE, linkname="../secret")),
                   "outside the layer")
    assert_refused(tmp_path, make_tar(entry("link", tarfile.LNKTYPE, linkname=str(secret))),
                   "outside the layer")
    assert secret.stat().st_nlink == 1


def test_hardlink_to_a_missing_file_is_refused(tmp_path):
    assert_refused(tmp_path, make_tar(entry("link", tarfile.LNKTYPE, linkname="nothere")),
                   "not in this layer")


def test_hardlink_through_a_symlinked_dir_is_refused(tmp_path):
    tar = make_tar(entry("d", tarfile.DIRTYPE), entry("d/f", data=b"x"),
                   entry("l", tarfile.SYMTYPE, linkname="d"),
                   entry("h", tarfile.LNKTYPE, linkname="l/f"))
    assert_refused(tmp_path, tar, "hard link through the symlink 'l'")


def test_aufs_metadata_is_skipped(tmp_path):
    dest = apply(tmp_path, make_tar(entry(".wh..wh.plnk", tarfile.DIRTYPE),
                                    entry(".wh..wh.plnk/123.456", data=b"x"),
                                    entry(".wh..wh.aufs"), entry("real", data=b"r")))
    assert os.listdir(dest) == ["real"]


def test_device_nodes_only_under_dev(tmp_path):
    assert_refused(tmp_path, make_tar(entry("home/sda", tarfile.BLKTYPE, devmajor=8)),
                   "only allowed under /dev")
    dest = apply(tmp_path, make_tar(entry("dev/null", tarfile.CHRTYPE, mode=0o666,
                                          devmajor=1, devminor=3)))
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_truncated_tar_fails_cleanly(tmp_path):
    tar = make_tar(entry("a", data=b"x" * 4096), entry("b", data=b"y" * 100_000))
    assert_refused(tmp_path, tar[:30_000], "truncated|invalid layer tar|unexpected end")


def test_corrupt_gzip_fails_cleanly(tmp_path):
    data = gzip.compress(make_tar(entry("a", data=os.urandom(100_000))))
    broken = data[:2000] + bytes(5000) + data[7000:]
    assert_refused(tmp_path, broken, "corrupt layer blob|invalid layer tar")


def test_garbage_is_not_a_tar(tmp_path):
    assert_refused(tmp_path, b"this is not a tar archive at all" * 40, "invalid layer tar")
