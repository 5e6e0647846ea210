"""The "Persistent storage with Volumes" slide: binds, named and anonymous volumes,
copy-up, --volumes-from, read-only root with tmpfs, and the ``volume`` verbs."""

from __future__ import annotations

import json
import os

import pytest

from helpers_network import mdnet  # noqa: F401  (a data root with busybox, private bridge)

from minidocker.errors import InvalidInput


# ----------------------------------------------------------------------- parsing
def test_volume_specs_are_read_as_docker_does():
    from minidocker.engine.volumes import parse_mount_spec, parse_volume_spec
    assert parse_volume_spec("/data")["Type"] == "volume" and parse_volume_spec("/data")["Source"] == ""
    named = parse_volume_spec("mysqldata:/var/lib/mysql:ro")
    assert (named["Type"], named["Source"], named["Target"], named["ReadOnly"]) == \
        ("volume", "mysqldata", "/var/lib/mysql", True)
    bind = parse_volume_spec("/home/core/mysqldata:/var/lib/mysql")
    assert (bind["Type"], bind["ReadOnly"]) == ("bind", False)
    m = parse_mount_spec("type=tmpfs,target=/run,tmpfs-size=1m")
    assert (m["Type"], m["Target"], m["TmpfsOptions"]) == ("tmpfs", "/run", ["size=1m"])
    m = parse_mount_spec("type=bind,src=/srv,dst=/srv,readonly")
    assert (m["Source"], m["Target"], m["ReadOnly"]) == ("/srv", "/srv", True)
    for bad in ["data:relative", "/a:/b:rx", "a:b:c:d", "bad name!:/x", "/a:/"]:
        with pytest.raises(InvalidInput):
            parse_volume_spec(bad)
    for bad in ["type=nfs,target=/x", "type=bind,target=/x", "type=volume,source=v",
                "type=tmpfs,source=x,target=/t"]:
        with pytest.raises(InvalidInput):
            parse_mount_spec(bad)


def test_volume_store_create_inspect_remove(data_root):
    from minidocker.engine import volumes
    rec = volumes.create("mysqldata", labels={"app": "db"})
    assert rec["Mountpoint"] == os.path.join(data_root, "volumes", "mysqldata", "_data")
    assert os.path.isdir(rec["Mountpoint"])
    assert volumes.create("mysqldata") == rec  # creating again returns the same volume
    assert [v["Name"] for v in volumes.list_volumes()] == ["mysqldata"]
    anon = volumes.create(anonymous=True)
    assert len(anon["Name"]) == 64 and volumes.is_anonymous(anon)
    assert volumes.prune() == ([anon["Name"]], 0)  # default: anonymous ones only
    assert volumes.prune(all_volumes=True)[0] == ["mysqldata"]
    with pytest.raises(Exception, match="no such volume"):
        volumes.inspect("mysqldata")


# ----------------------------------------------------------------------- end to end
def _mounts_of_data_root(md):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if md.root in line]


def test_named_volume_outlives_its_container(mdnet):
    md = mdnet
    md.out("run", "--name", "writer", "--network", "none", "-v", "mysqldata:/var/lib/mysql", "busybox",
           "sh", "-c", "echo 'ibdata1' > /var/lib/mysql/ibdata1")
    md.out("rm", "writer")
    assert md.out("run", "--rm", "--network", "none", "-v", "mysqldata:/var/lib/mysql", "busybox",
                  "cat", "/var/lib/mysql/ibdata1") == "ibdata1\n"
    assert md.out("volume", "ls").splitlines() == ["DRIVER    VOLUME NAME", "local     mysqldata"]
    info = json.loads(md.out("volume", "inspect", "mysqldata"))[0]
    assert info["Mountpoint"] == os.path.join(md.root, "volumes", "mysqldata", "_data")
    assert open(os.path.join(info["Mountpoint"], "ibdata1")).read() == "ibdata1\n"
    assert md.out("volume", "rm", "mysqldata") == "mysqldata\n"
    assert not _mounts_of_data_root(md)


def test_read_only_volume_refuses_writes(mdnet):
    r = mdnet("run", "--rm", "--network", "none", "-v", "rodata:/data:ro", "busybox", "sh", "-c",
              "echo x > /data/f")
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr
    mdnet.out("volume", "rm", "rodata")


def test_bind_mount_shares_a_host_directory(mdnet, tmp_path):
    host_dir = tmp_path / "mysqldata"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host\n")
    out = mdnet.out("run", "--rm", "--network", "none", "-v", f"{host_dir}:/var/lib/mysql", "busybox",
                    "sh", "-c", "cat /var/lib/mysql/from-host; echo ctr > /var/lib/mysql/auto.cnf")
    assert out == "host\n"
    assert (host_dir / "auto.cnf").read_text() == "ctr\n"  # the slide's `ls mysqldata`
    out = mdnet.out("run", "--rm", "--network", "none", "--mount",
                    f"type=bind,source={host_dir},target=/m,readonly", "busybox", "sh", "-c",
                    "cat /m/auto.cnf; touch /m/x 2>&1; true")
    assert out.startswith("ctr\n") and "Read-only file system" in out
    r = mdnet("run", "--rm", "--network", "none", "--mount", "type=bind,source=/nonexistent-dir,target=/m",
              "busybox", "true")
    assert r.returncode == 125
    assert "bind source path does not exist: /nonexistent-dir" in r.stderr


def test_new_named_volume_is_filled_from_the_image(mdnet):
    out = mdnet.out("run", "--rm", "--network", "none", "-v", "etcdata:/etc", "busybox", "head", "-1", "/etc/passwd")
    assert out == "root:x:0:0:root:/root:/bin/sh\n"
    data = os.path.join(mdnet.root, "volumes", "etcdata", "_data")
    assert {"passwd", "group"} <= set(os.listdir(data))
    mdnet.out("volume", "rm", "etcdata")


@pytest.fixture
def image_with_volume(mdnet):
    """busybox plus ``VOLUME /etc`` (an image path with content), made with the image store."""
    from minidocker.image.store import Store
    store = Store(root=mdnet.root)
    base = store.resolve("busybox")
    config = store.image_config(base)
    config["config"]["Volumes"] = {"/etc": {}}
    diff_ids = config["rootfs"]["diff_ids"]
    layers = [dict(d, diff_id=diff_id) for d, diff_id in zip(store.image_manifest(base)["layers"], diff_ids)]
    image_id = store.write_image(config, layers)
    store.tag(image_id, "withvolume:latest")
    yield "withvolume"
    mdnet("rmi", "withvolume")


def test_image_volume_is_anonymous_and_rm_v_removes_it(mdnet, image_with_volume):
    md = mdnet
    md.out("run", "--name", "anon", "--network", "none", image_with_volume, "sh", "-c",
           "echo kept > /etc/kept")
    mounts = json.loads(md.out("inspect", "-f", "{{json .Mounts}}", "anon"))
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/etc"
    name = mounts[0]["Name"]
    assert len(name) == 64
    # a restart reuses the same anonymous volume
    assert md.out("start", "-a", "anon") == ""
    assert md.out("volume", "ls", "-q") == f"{name}\n"
    # --volumes-from: the same volume, here read-only
    out = md.out("run", "--rm", "--network", "none", "--volumes-from", "anon:ro", "busybox", "sh", "-c",
                 "cat /etc/kept; touch /etc/new 2>&1; true")
    assert out.startswith("kept\n") and "Read-only file system" in out
    r = md("volume", "rm", name)
    assert r.returncode == 1 and "volume is in use" in r.stderr
    md.out("rm", "-v", "anon")
    assert md.out("volume", "ls", "-q") == ""


def test_read_only_rootfs_with_tmpfs(mdnet):
    out = mdnet.out("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/run:size=1m", "busybox",
                    "sh", "-c", "touch /x 2>&1; touch /run/ok && echo tmpfs-writable; grep ' /run ' /proc/mounts")
    lines = out.splitlines()
    assert "Read-only file system" in lines[0]
    assert lines[1] == "tmpfs-writable"
    assert lines[2].startswith("tmpfs /run tmpfs rw,nosuid,nodev,noexec") and "size=1024k" in lines[2]


def test_bad_volume_input_is_a_clear_error(mdnet):
    r = mdnet("run", "--rm", "--network", "none", "-v", "data:relative/path", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.strip().endswith("mount path must be absolute")
    r = mdnet("volume", "create", "bad/name")
    assert r.returncode == 125 and "includes invalid characters" in r.stderr
    r = mdnet("volume", "inspect", "nope")
    assert r.returncode == 1 and "no such volume" in r.stderr


def test_mounts_are_parsed_once_and_checked_before_anything_exists():
    from minidocker.engine.volumes import parse_mount_spec, parse_mounts
    specs = parse_mounts(["data:/data", "/srv:/srv:ro"],
                         [parse_mount_spec("type=volume,src=v,dst=/v,volume-nocopy"),
                          parse_mount_spec("type=tmpfs,target=/tmp,tmpfs-size=1m,tmpfs-mode=1777")],
                         {"/run": "size=1m"})
    assert [(s["Type"], s["Source"], s["Target"], s["ReadOnly"]) for s in specs] == [
        ("volume", "data", "/data", False), ("bind", "/srv", "/srv", True),
        ("volume", "v", "/v", False), ("tmpfs", "", "/tmp", False), ("tmpfs", "", "/run", False)]
    # nothing of --mount is lost on the way (create used to drop these)
    assert specs[2]["NoCopy"] is True
    assert specs[3]["TmpfsOptions"] == ["size=1m", "mode=1777"]
    with pytest.raises(InvalidInput, match="Duplicate mount point: /data"):
        parse_mounts(["aa:/data"], [parse_mount_spec("type=volume,source=bb,target=/data")])
    with pytest.raises(InvalidInput, match="must be absolute"):
        parse_mounts(tmpfs={"run": ""})


def test_a_record_keeps_its_parsed_mounts_and_old_records_still_start(mdnet):
    """``create`` stores the parsed mounts (``_MountSpecs``, not shown by inspect), with
    all of ``--mount`` (``tmpfs-mode`` here); a record from before, with only
    HostConfig's strings, is parsed at start instead."""
    from minidocker import paths
    cid = mdnet.out("create", "--network", "none", "--mount",
                    "type=tmpfs,target=/scratch,tmpfs-mode=700", "-v", "keptdata:/data",
                    "busybox", "sh", "-c", "stat -c %a /scratch; touch /data/ok; ls /data").strip()
    try:
        state_path = os.path.join(mdnet.root, "containers", cid, "state.json")
        state = paths.read_json(state_path)
        assert [s["Target"] for s in state["_MountSpecs"]] == ["/data", "/scratch"]
        assert "_MountSpecs" not in json.loads(mdnet.out("inspect", cid))[0]
        assert mdnet.out("start", "-a", cid) == "700\nok\n"
        # As the engine wrote it before: no _MountSpecs, and --mount without its options
        state = paths.read_json(state_path)
        del state["_MountSpecs"]
        state["HostConfig"]["Mounts"] = [{"Type": "tmpfs", "Source": "", "Target": "/scratch",
                                          "ReadOnly": False}]
        paths.write_json(state_path, state)
        assert mdnet.out("start", "-a", cid) == "1777\nok\n"  # tmpfs's own default mode
    finally:
        mdnet.out("rm", cid)
        mdnet.out("volume", "rm", "keptdata")