"""docker-py (Debian's python3-docker 5.0, on /usr/bin/python3) against minidocker's
Engine API: images (build, pull, get/list/tag/remove, save/load), networks and volumes,
events. Each test runs a small script with the system's python and checks what it
printed, and what minidocker's own CLI sees."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from helpers_api import SYSTEM_PYTHON, api  # noqa: F401  (fixture)
from helpers_registry import embedded


@pytest.fixture
def py(api):
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("no /usr/bin/python3")
    r = api.python("import docker")
    if r.returncode != 0:
        pytest.skip("docker-py is not installed (apt-get install python3-docker)")

    def run(code: str) -> dict:
        r = api.python("import json, docker\nclient = docker.from_env()\n" + textwrap.dedent(code))
        assert r.returncode == 0, r.stdout + r.stderr + "\n--- service log:\n" + api.log()
        return json.loads(r.stdout.strip().splitlines()[-1])
    return run


def test_build_and_images(api, py, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\n"
                                    "RUN echo \"built for $WHO\" > /who\nCMD [\"cat\", \"/who\"]\n")
    out = py(f"""
        image, logs = client.images.build(path={str(ctx)!r}, tag="lab/py:1",
                                          buildargs={{"WHO": "docker-py"}}, rm=True)
        steps = [l["stream"].strip() for l in logs if "stream" in l]
        image.reload()
        again, logs2 = client.images.build(path={str(ctx)!r}, tag="lab/py:1",
                                           buildargs={{"WHO": "docker-py"}})
        listed = sorted(t for i in client.images.list() for t in i.tags)
        image.tag("lab/py", "2")
        tags = client.images.get("lab/py:2").tags
        client.images.remove("lab/py:2")
        print(json.dumps({{"id": image.id, "tags": image.tags, "steps": steps,
                          "again": again.id, "cached": sum("Using cache" in l.get("stream", "")
                                                          for l in logs2),
                          "listed": listed, "tagged": sorted(tags),
                          "cmd": image.attrs["Config"]["Cmd"]}}))
    """)
    assert out["tags"] == ["lab/py:1"] and out["again"] == out["id"]
    assert "Step 3/4 : RUN echo \"built for $WHO\" > /who" in out["steps"]
    assert out["cached"] == 3 and out["cmd"] == ["cat", "/who"]
    assert "lab/py:1" in out["listed"] and out["tagged"] == ["lab/py:1", "lab/py:2"]
    assert api.minidocker("run", "--rm", "lab/py:1").stdout == "built for docker-py\n"
    # a failing build raises BuildError with the builder's message
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    out = py(f"""
        try:
            client.images.build(path={str(ctx)!r})
            print(json.dumps({{"error": None}}))
        except docker.errors.BuildError as e:
            print(json.dumps({{"error": str(e)}}))
    """)
    assert out["error"] == "The command '/bin/sh -c exit 7' returned a non-zero code: 7"
    api.out("rmi", "lab/py:1")


def test_pull_push_save_load(api, py, tmp_path):
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/pyimg"
        api.out("tag", "busybox", f"{ref}:v1")
        out = py(f"""
            lines = list(client.images.push({ref!r}, tag="v1", stream=True, decode=True))
            client.images.remove({ref + ':v1'!r})
            image = client.images.pull({ref!r}, tag="v1")
            data = b"".join(image.save(named=True))
            client.images.remove({ref + ':v1'!r})
            loaded = client.images.load(data)
            print(json.dumps({{"aux": [l["aux"] for l in lines if "aux" in l],
                              "pulled": image.tags, "id": image.id,
                              "loaded": [i.tags for i in loaded]}}))
        """)
    assert out["aux"][0]["Tag"] == "v1" and out["aux"][0]["Digest"].startswith("sha256:")
    # (the same image as busybox:latest, so it has that tag too)
    assert f"{reg.host}/lab/pyimg:v1" in out["pulled"]
    assert len(out["loaded"]) == 1 and f"{reg.host}/lab/pyimg:v1" in out["loaded"][0]
    assert api.out("images", "-q", "--no-trunc", f"{reg.host}/lab/pyimg:v1").strip() == out["id"]
    api.out("rmi", f"{reg.host}/lab/pyimg:v1")


def test_networks_and_volumes(api, py):
    cid = api.minidocker("run", "-d", "--name", "pyc", "busybox", "sleep", "300").stdout.strip()
    try:
        out = py("""
            net = client.networks.create("pynet", driver="bridge", labels={"by": "docker-py"},
                ipam=docker.types.IPAMConfig(pool_configs=[
                    docker.types.IPAMPool(subnet="10.212.0.0/24", gateway="10.212.0.1")]))
            net.connect("pyc", aliases=["pyalias"], ipv4_address="10.212.0.9")
            net.reload()
            members = {c.name: c.id for c in net.containers}
            found = [n.name for n in client.networks.list(names=["pynet"])]
            net.disconnect("pyc")
            net.reload()
            after = len(net.containers)
            net.remove()
            vol = client.volumes.create("pyvol", labels={"by": "docker-py"})
            got = client.volumes.get("pyvol").attrs
            vols = [v.name for v in client.volumes.list(filters={"label": "by=docker-py"})]
            vol.remove()
            try:
                client.volumes.get("pyvol")
                missing = False
            except docker.errors.NotFound:
                missing = True
            print(json.dumps({"members": members, "found": found, "after": after,
                              "vol": got, "vols": vols, "missing": missing}))
        """)
    finally:
        api.minidocker("rm", "-f", cid)
    assert out["members"] == {"pyc": cid} and out["found"] == ["pynet"] and out["after"] == 0
    assert out["vol"]["Labels"] == {"by": "docker-py"} and out["vols"] == ["pyvol"]
    assert out["missing"] is True
    assert "pynet" not in api.minidocker("network", "ls").stdout


def test_events_and_info(api, py):
    out = py("""
        import time, threading
        since = time.time()
        client.volumes.create("evvol").remove()
        events = client.events(since=since, until=time.time() + 1, decode=True,
                               filters={"type": "volume"})
        got = [(e["Action"], e["Actor"]["ID"]) for e in events]
        info = client.info()
        print(json.dumps({"events": got, "driver": info["Driver"],
                          "images": info["Images"], "version": client.version()["ApiVersion"]}))
    """)
    assert out["events"] == [["create", "evvol"], ["destroy", "evvol"]]
    assert out["driver"] == "overlay2" and out["images"] >= 1 and out["version"] == "1.41"
