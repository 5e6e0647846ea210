"""``system check [--repair]`` on damage a crash cannot make but a disk or a hand can
(a corrupt blob, a layer missing a file, a dangling tag...), scratch ownership, and
``system df`` / ``system prune`` as Docker prints them. (What crashes leave is
tests/test_crash.py's.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import IS_ROOT, REPO

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")


def md(root, *args, input=None, check=False, timeout=120):
    r = subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], cwd=REPO,
                       input=input, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "MINIDOCKER_ROOT": root})
    if check and r.returncode != 0:
        raise AssertionError(f"minidocker {' '.join(map(str, args))} -> {r.returncode}\n"
                             f"{r.stdout}{r.stderr}")
    return r


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("system-template") / "root")
    os.makedirs(root)
    r = md(root, "bootstrap", "busybox")
    if r.returncode != 0:
        pytest.skip(f"cannot bootstrap busybox: {r.stderr.strip()}")
    return root


@pytest.fixture
def root(template, tmp_path):
    """A private copy of a data root holding busybox:latest."""
    path = str(tmp_path / "root")
    subprocess.run(["cp", "-a", template, path], check=True)
    yield path
    ids = md(path, "ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        md(path, "rm", "-f", *ids)


def busybox(root):
    from minidocker.image.store import Store
    store = Store(root)
    image_id = store.repositories()["busybox:latest"]
    layer = store.image_manifest(image_id)["layers"][0]["digest"]
    diff_id = store.image_diff_ids(image_id)[0]
    return image_id, layer, diff_id


def check(root, *flags):
    return md(root, "system", "check", *flags)


def test_a_sound_root_checks_clean(root):
    r = check(root)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_corrupt_blob_makes_its_image_not_whole_and_repair_removes_both(root):
    image_id, layer, _ = busybox(root)
    with open(os.path.join(root, "blobs", "sha256", layer[7:]), "ab") as f:
        f.write(b"rot")
    r = check(root)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert f"blob {layer}: content does not match its digest" in lines
    assert f"image {image_id}: not whole: layer blob {layer} is damaged" in lines
    r = check(root, "--repair")
    assert r.returncode == 0, r.stdout
    assert f"removed blob {layer}" in r.stdout.splitlines()
    assert f"removed image {image_id} (busybox:latest)" in r.stdout.splitlines()
    assert check(root).returncode == 0
    assert md(root, "images", "-q").stdout == ""


def test_an_image_a_container_uses_is_never_removed(root):
    image_id, layer, _ = busybox(root)
    cid = md(root, "create", "busybox", "true", check=True).stdout.strip()
    os.unlink(os.path.join(root, "blobs", "sha256", layer[7:]))
    r = check(root, "--repair")
    assert r.returncode == 1
    assert (f"image {image_id}: not whole: layer blob {layer} is missing (kept: used by "
            f"container {cid[:12]})") in r.stdout.splitlines()
    assert md(root, "images", "-q", "--no-trunc").stdout.split() == [image_id]


def test_damaged_layer_is_extracted_again_from_its_blob(root):
    _, _, diff_id = busybox(root)
    layer_dir = os.path.join(root, "layers", diff_id[7:])
    os.unlink(os.path.join(layer_dir, "etc", "passwd"))
    r = check(root)
    assert r.returncode == 1
    assert re.search(rf"^layer {diff_id}: its directory does not match the layer database "
                     r"\(\d+ entries, \d+ bytes; \d+ and \d+ when extracted\)$", r.stdout, re.M)
    r = check(root, "--repair")
    assert r.returncode == 0
    assert f"extracted layer {diff_id} again from blob" in r.stdout
    assert md(root, "run", "--rm", "--network", "none", "busybox", "grep", "-c", "root",
              "/etc/passwd").stdout == "1\n"


def test_dangling_tag_and_unknown_files(root):
    from minidocker import paths
    repos = paths.read_json(os.path.join(root, "repositories.json"))
    repos["ghost:1"] = "sha256:" + "ab" * 32
    paths.write_json(os.path.join(root, "repositories.json"), repos)
    dead = subprocess.Popen(["true"])
    dead.wait()
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
    stale = f"layer-{dead.pid}-12345-abcdef"
    os.mkdir(os.path.join(root, "tmp", stale))
    live = f"blob-{os.getpid()}-{_start(os.getpid())}-xyz"
    open(os.path.join(root, "tmp", live), "w").close()
    open(os.path.join(root, "images", f".tmp-{dead.pid}-1-zzz"), "w").close()
    os.makedirs(os.path.join(root, "containers", "f" * 64, "upper"))
    os.makedirs(os.path.join(root, "volumes", "halfmade", "_data"))
    r = check(root)
    assert r.returncode == 1
    assert sorted(r.stdout.splitlines()) == sorted([
        f"tag ghost:1: names image sha256:{'ab' * 32}, which is not here",
        f"scratch tmp/{stale}: left by process {dead.pid}, which is gone",
        f"file images/.tmp-{dead.pid}-1-zzz: an unfinished write of a process that is gone",
        f"container {'f' * 12}: has no record (left by a create or rm that did not finish)",
        "volume halfmade: has no record (volume.json)"])
    r = check(root, "--repair")
    assert r.returncode == 0, r.stdout
    assert {"removed tag ghost:1", f"removed scratch tmp/{stale}",
            f"removed images/.tmp-{dead.pid}-1-zzz", f"removed container directory {'f' * 12}",
            "removed volume directory halfmade"} <= set(r.stdout.splitlines())
    assert os.listdir(os.path.join(root, "tmp")) == [live]     # a live owner's stays
    os.unlink(os.path.join(root, "tmp", live))
    assert check(root).returncode == 0


def _start(pid):
    from minidocker.kernel import processes
    return processes.start_time(pid)


def test_unused_content_is_judged_only_when_no_writer_is_alive(root):
    import hashlib
    orphan = hashlib.sha256(b"orphan").hexdigest()
    with open(os.path.join(root, "blobs", "sha256", orphan), "wb") as f:
        f.write(b"orphan")
    lock = os.path.join(root, "locks", "gc")
    writer = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_SH)\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "held\n"
        r = check(root)
        assert f"a command is writing to the store (pid {writer.pid})" in r.stderr
        assert "no image uses it" not in r.stdout
    finally:
        writer.kill()
        writer.wait()
    r = check(root)
    assert f"blob sha256:{orphan}: no image uses it" in r.stdout


def test_frozen_cgroup_that_nothing_paused_is_thawed(root):
    from minidocker.kernel import cgroups
    cid = md(root, "run", "-d", "--network", "none", "busybox", "sleep", "100",
             check=True).stdout.strip()
    cg = cgroups.open_cgroup(f"minidocker/{cid}")
    cg.freeze()
    r = check(root)
    assert f"container {cid[:12]}: its cgroup is frozen, but nothing paused it" in r.stdout
    r = check(root, "--repair")
    assert r.returncode == 0 and f"thawed container {cid[:12]}" in r.stdout
    assert not cg.is_frozen()


def test_a_mount_nothing_uses(root):
    from minidocker.kernel import mounts
    target = os.path.join(root, "volumes", "stray")
    os.makedirs(target)
    with open(os.path.join(target, "volume.json"), "w") as f:
        json.dump({"Name": "stray"}, f)
    mounts.mount_tmpfs(target)
    try:
        r = check(root)
        assert "mount volumes/stray: nothing running uses it" in r.stdout.splitlines()
        r = check(root, "--repair")
        assert "unmounted volumes/stray" in r.stdout.splitlines()
        assert not mounts.is_mountpoint(target)
    finally:
        if mounts.is_mountpoint(target):
            mounts.umount(target, lazy=True)


# --------------------------------------------------------------------------- scratch
def test_scratch_names_say_their_owner_and_pid_reuse_does_not_fool_it(tmp_path):
    from minidocker import scratch
    name = scratch.prefix("layer") + "abc"
    assert scratch.owner(name) == {"Pid": os.getpid(), "PidStart": _start(os.getpid())}
    path = tmp_path / name
    path.write_text("")
    assert not scratch.is_stale(str(path))
    # the same pid with another start time: a process that died, whose pid came back
    reused = tmp_path / f"layer-{os.getpid()}-{_start(os.getpid()) - 1}-abc"
    reused.write_text("")
    assert scratch.is_stale(str(reused))
    assert scratch.owner("export-empty-0123") is None


def test_a_lock_wait_is_bounded_and_names_the_holder(tmp_path):
    from minidocker import paths
    from minidocker.errors import MinidockerError
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, time\n"
        f"fd = os.open({str(tmp_path / 'locks' / 'store')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    os.makedirs(tmp_path / "locks", exist_ok=True)
    try:
        assert holder.stdout.readline() == "held\n"
        start = time.monotonic()
        with pytest.raises(MinidockerError, match=rf"timed out after 0.3s waiting for the "
                           rf"'store' lock \(held by pid {holder.pid}\)"):
            with paths.locked("store", root=str(tmp_path), timeout=0.3):
                pass
        assert time.monotonic() - start < 2
    finally:
        holder.kill()
        holder.wait()
    with paths.locked("store", root=str(tmp_path), timeout=0.3):
        pass


# --------------------------------------------------------------------------- df, prune
def test_df_counts_what_the_root_holds(root):
    running = md(root, "run", "-d", "--network", "none", "busybox", "sleep", "100",
                 check=True).stdout.strip()
    md(root, "run", "--network", "none", "--name", "stopped", "busybox", "sh", "-c",
       "head -c 1500 /dev/zero > /file", check=True)
    md(root, "volume", "create", "v1", check=True)
    lines = md(root, "system", "df", check=True).stdout.splitlines()
    assert lines[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    cells = [re.split(r"\s{2,}", line) for line in lines[1:]]
    assert cells[0][:3] == ["Images", "1", "1"] and cells[0][4] == "0B (0%)"
    assert cells[1] == ["Containers", "2", "1", "1.5kB", "1.5kB (100%)"]
    assert cells[2] == ["Local Volumes", "1", "0", "0B", "0B"]
    assert cells[3] == ["Build Cache", "0", "0", "0B", "0B"]
    verbose = md(root, "system", "df", "-v", check=True).stdout
    for header in ("Images space usage:\n\nREPOSITORY   TAG       IMAGE ID       CREATED",
                   "Containers space usage:\n\nCONTAINER ID   IMAGE     COMMAND",
                   "Local Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\nv1            0         0B",
                   "Build cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED"):
        assert header in verbose
    assert running[:12] in verbose and "stopped" in verbose


def test_prune_asks_then_removes_what_nothing_uses(root):
    running = md(root, "run", "-d", "--network", "none", "busybox", "sleep", "100",
                 check=True).stdout.strip()
    stopped = md(root, "create", "--network", "none", "-v", "/anon", "busybox", "true",
                 check=True).stdout.strip()
    md(root, "start", "-a", stopped, check=True)
    md(root, "tag", "busybox", "spare:1", check=True)
    r = md(root, "system", "prune", "--volumes", input="n\n")
    assert r.stdout.startswith(
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all dangling images\n  - all dangling build cache\n\n"
        "Are you sure you want to continue? [y/N]")
    assert stopped in md(root, "ps", "-aq", "--no-trunc").stdout
    r = md(root, "system", "prune", "-f", "--volumes", check=True)
    out = r.stdout
    assert out.startswith(f"Deleted Containers:\n{stopped}\n\nDeleted Volumes:\n")
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert md(root, "ps", "-aq", "--no-trunc").stdout.split() == [running]
    assert md(root, "volume", "ls", "-q").stdout == ""
    # tagged images stay without -a; with -a, those no container uses go
    md(root, "rm", "-f", running, check=True)
    out = md(root, "system", "prune", "-a", "-f", check=True).stdout
    assert "Deleted Images:\nuntagged: busybox:latest\nuntagged: spare:1\n" in out \
        or "Deleted Images:\nuntagged: spare:1\nuntagged: busybox:latest\n" in out
    assert md(root, "images", "-q").stdout == ""
    assert check(root).returncode == 0
