"""Images through the Engine API, driven by the unchanged docker CLI 20.10: images,
inspect, history, tag, rmi (and its conflicts), pull/push against registries on
127.0.0.1 (with login), save/load both ways with minidocker's own CLI, the classic
build (steps, build args, -f, labels, the cache, a failing step), image prune; and the
bad requests a raw client can send."""

from __future__ import annotations

import json
import os
import tarfile
import time

import pytest

from helpers_api import api  # noqa: F401  (fixture)
from helpers_registry import distribution, embedded


def _ids(api, *args) -> list[str]:
    return api.out("images", "--no-trunc", "--format", "{{.ID}}", *args).split()


def test_images_inspect_history_match_the_cli(api):
    own = api.minidocker("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    theirs = api.out("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert theirs == own and "busybox:latest sha256:" in theirs
    doc = json.loads(api.out("image", "inspect", "busybox"))[0]
    ours = json.loads(api.minidocker("image", "inspect", "busybox").stdout)[0]
    assert doc["Id"] == ours["Id"] and doc["RepoTags"] == ["busybox:latest"]
    assert doc["RootFS"]["Layers"] == ours["RootFS"]["Layers"]
    assert doc["Config"]["Cmd"] == ours["Config"]["Cmd"] and doc["Size"] == ours["Size"]
    assert api.out("inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox").strip() == "linux/amd64"
    hist = api.out("history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", "busybox")
    assert hist.split()[0] == ours["Id"]
    r = api.docker("image", "inspect", "nothere")
    assert r.returncode == 1 and "No such image: nothere" in r.stderr


def test_tag_rmi_and_conflicts(api):
    api.out("tag", "busybox", "lab/tagged:v1")
    assert "lab/tagged:v1" in api.out("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert api.minidocker("images", "-q", "lab/tagged").stdout.strip()
    cid = api.minidocker("create", "lab/tagged:v1", "true").stdout.strip()
    try:
        api.out("rmi", "busybox")                  # another tag remains: only untagged
        api.out("tag", "lab/tagged:v1", "busybox")
        r = api.docker("rmi", "lab/tagged:v1", "busybox")
        # the first goes; the second is the last name of an image a container uses
        assert r.returncode == 1
        assert r.stdout.splitlines() == ["Untagged: lab/tagged:v1"]
        assert "Error response from daemon: conflict: unable to remove repository reference \"busybox\"" in r.stderr
        assert f"container {cid[:12]} is using its referenced image" in r.stderr
        image_id = _ids(api, "busybox")[0]
        r = api.docker("rmi", image_id[7:19])
        assert r.returncode == 1
        assert "(must be forced) - image is being used by stopped container" in r.stderr
    finally:
        api.minidocker("rm", cid)
    r = api.docker("rmi", "nothere:1")
    assert r.returncode == 1 and r.stderr.strip() == "Error: No such image: nothere:1"
    r = api.docker("tag", "busybox", "Bad/Name")
    assert r.returncode != 0 and "must be lowercase" in r.stderr


def test_push_and_pull_through_the_api(api, tmp_path):
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/app:v1"
        api.out("tag", "busybox", ref)
        out = api.out("push", ref)
        lines = out.splitlines()
        assert lines[0] == f"The push refers to repository [{reg.host}/lab/app]"
        assert any(l.endswith(": Pushed") for l in lines)
        assert lines[-1].startswith("v1: digest: sha256:") and " size: " in lines[-1]
        api.out("rmi", ref)
        out = api.out("pull", ref)
        assert out.splitlines()[0] == "v1: Pulling from lab/app"
        assert f"Status: Image is up to date for {ref}" in out
        assert out.splitlines()[-1] == ref
        assert _ids(api, ref) == _ids(api, "busybox")
        r = api.docker("pull", f"{reg.host}/lab/missing")
        assert r.returncode == 1
        assert "Error response from daemon:" in r.stderr and "not found" in r.stderr
        # --until a second ahead: the CLI sends whole seconds, the push was just now
        until = str(int(time.time()) + 1)
        events = api.out("events", "--since", "2m", "--until", until, "--filter", "type=image",
                         "--filter", f"image={reg.host}/lab/app", "--format", "{{.Action}} {{.Actor.ID}}")
        assert f"push {ref}" in events and f"pull {ref}" in events


def test_login_and_pull_from_a_registry_with_a_password(api, tmp_path):
    from minidocker.registry.server import bcrypt_hash
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt_hash('s3cret', 4)}\n")
    with distribution(tmp_path, htpasswd=str(htpasswd)) as reg:
        ref = f"{reg.host}/lab/private:v1"
        api.out("tag", "busybox", ref)
        r = api.docker("push", ref)
        assert r.returncode == 1 and "unauthorized: authentication required" in r.stderr
        r = api.docker("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n")
        assert r.returncode == 1 and "incorrect username or password" in r.stderr
        r = api.docker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        api.out("push", ref)                     # the CLI sends X-Registry-Auth
        api.out("rmi", ref)
        assert api.out("pull", ref).splitlines()[-1] == ref
        api.out("logout", reg.host)
        api.out("rmi", ref)
        r = api.docker("pull", ref)
        assert r.returncode == 1 and "unauthorized" in r.stderr


def test_save_and_load_both_ways(api, tmp_path):
    api.out("tag", "busybox", "lab/saved:1")
    image_id = _ids(api, "lab/saved:1")[0]
    # docker save -> minidocker load
    theirs = tmp_path / "docker-save.tar"
    api.out("save", "-o", theirs, "lab/saved:1")
    with tarfile.open(theirs) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["lab/saved:1"]
    api.out("rmi", "lab/saved:1")
    assert api.minidocker("load", "-i", theirs).stdout.strip() == "Loaded image: lab/saved:1"
    assert _ids(api, "lab/saved:1") == [image_id]
    # minidocker save -> docker load (from stdin, as `docker load < file`)
    ours = tmp_path / "minidocker-save.tar"
    api.minidocker("save", "-o", ours, "lab/saved:1")
    api.out("rmi", "lab/saved:1")
    r = api.docker("load", input=ours.read_bytes())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == "Loaded image: lab/saved:1"
    assert _ids(api, "lab/saved:1") == [image_id]
    # several names in one archive: GET /images/get?names=...
    both = tmp_path / "both.tar"
    api.out("save", "-o", both, "lab/saved:1", "busybox")
    with tarfile.open(both) as tar:
        tags = sorted(t for m in json.load(tar.extractfile("manifest.json")) for t in m["RepoTags"])
    assert tags == ["busybox:latest", "lab/saved:1"]
    api.out("rmi", "lab/saved:1")
    r = api.docker("save", "-o", tmp_path / "x.tar", "nothere")
    assert r.returncode == 1 and "No such image: nothere" in r.stderr


DOCKERFILE = """\
FROM busybox
ARG GREETING=hello
RUN echo "$GREETING from the build" > /greeting
COPY data.txt /data.txt
CMD ["cat", "/greeting", "/data.txt"]
"""


def test_classic_build_steps_args_file_and_cache(api, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile.custom").write_text(DOCKERFILE)
    (ctx / "data.txt").write_text("some data\n")
    (ctx / "ignored.bin").write_text("x")
    (ctx / ".dockerignore").write_text("ignored.bin\n")
    r = api.docker("build", "-t", "lab/built:1", "-t", "lab/built:latest", "-f",
                   "Dockerfile.custom", "--build-arg", "GREETING=bonjour",
                   "--label", "org.example.team=lab", ".", cwd=ctx)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Sending build context to Docker daemon")
    assert "Step 1/6 : FROM busybox" in lines
    assert "Step 3/6 : RUN echo \"$GREETING from the build\" > /greeting" in lines
    assert any(l.startswith(" ---> Running in ") for l in lines)
    assert any(l.startswith("Removing intermediate container ") for l in lines)
    assert any(l.startswith("Step 6/6 : LABEL ") for l in lines)
    assert lines[-3].startswith("Successfully built ")
    assert lines[-2:] == ["Successfully tagged lab/built:1", "Successfully tagged lab/built:latest"]
    image_id = _ids(api, "lab/built:1")[0]
    assert lines[-3] == f"Successfully built {image_id[7:19]}"
    run = api.minidocker("run", "--rm", "lab/built:1")
    assert run.stdout == "bonjour from the build\nsome data\n"
    labels = json.loads(api.out("inspect", "-f", "{{json .Config.Labels}}", "lab/built:1"))
    assert labels == {"org.example.team": "lab"}
    # the same build again: every step from the cache, the same image
    r = api.docker("build", "-t", "lab/built:1", "-f", "Dockerfile.custom", "--build-arg",
                   "GREETING=bonjour", "--label", "org.example.team=lab", ".", cwd=ctx)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(" ---> Using cache") == 5
    assert f"Successfully built {image_id[7:19]}" in r.stdout
    # -q: only the id
    r = api.docker("build", "-q", "-f", "Dockerfile.custom", "--build-arg", "GREETING=bonjour",
                   "--label", "org.example.team=lab", ".", cwd=ctx)
    assert r.stdout.strip() == image_id
    api.out("rmi", "lab/built:1", "lab/built:latest")


def test_failing_build_reports_the_step_and_leaves_nothing(api, tmp_path):
    ctx = tmp_path / "bad"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo partial > /p\nRUN exit 3\n")
    before = set(_ids(api, "-a"))
    r = api.docker("build", "-t", "lab/bad", ".", cwd=ctx)
    assert r.returncode == 3          # errorDetail.code: the step's exit code, as dockerd
    assert "Step 3/3 : RUN exit 3" in r.stdout
    assert r.stderr.strip().endswith("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
    assert set(_ids(api, "-a")) == before
    assert api.minidocker("ps", "-aq").stdout.strip() == ""
    (ctx / "Dockerfile").write_text("FROM busybox\nBOGUS thing\n")
    r = api.docker("build", ".", cwd=ctx)
    assert r.returncode == 1 and "BOGUS" in r.stderr


def test_image_prune(api, tmp_path):
    ctx = tmp_path / "p"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo one > /v\n")
    api.out("build", "-t", "lab/prune", ".", cwd=ctx)
    old = _ids(api, "lab/prune")[0]
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo two > /v\n")
    api.out("build", "-t", "lab/prune", ".", cwd=ctx)
    assert old in _ids(api, "--filter", "dangling=true")
    out = api.out("image", "prune", "-f")
    assert "Deleted Images:" in out and f"deleted: {old}" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert old not in _ids(api, "-a")
    api.out("rmi", "lab/prune")


def test_raw_requests(api):
    status, headers, body = api.request("GET", "/v1.41/images/nothere/json")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": "No such image: nothere:latest"}
    status, _, body = api.request("GET", '/images/json?filters={"reference":["busy*"]}')
    listed = json.loads(body)
    assert status == 200 and [i["RepoTags"] for i in listed] == [["busybox:latest"]]
    assert isinstance(listed[0]["Created"], int) and listed[0]["Containers"] == -1
    status, _, body = api.request("GET", '/images/json?filters={"colour":["red"]}')
    assert status == 400 and json.loads(body)["message"] == "Invalid filter 'colour'"
    status, _, body = api.request("GET", "/images/json?filters=notjson")
    assert status == 400
    status, _, body = api.request("POST", "/images/busybox/tag")
    assert status == 400
    status, _, body = api.request("POST", "/images/load", body=b"not a tar at all")
    assert status in (400, 500) and json.loads(body)["message"]
    status, _, body = api.request("POST", "/build", body=b"garbage")
    assert status == 400 and "not a valid tar" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/images/create?fromImage=Bad_Name")
    assert status == 400
    status, _, body = api.request("POST", "/images/create?fromImage=busybox")   # pull -a
    assert status == 400 and "one tag at a time" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/images/nothere/get")
    assert status == 404 and json.loads(body)["message"] == "No such image: nothere:latest"


def test_import_from_a_tar(api, tmp_path, busybox_rootfs):
    """``docker import`` sends the tar as the body of ``POST /images/create?fromSrc=-``."""
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    out = api.out("import", "-m", "from a tar", "-c", 'CMD ["echo", "imported"]', archive,
                  "lab/imported:1")
    image_id = out.strip()
    assert image_id.startswith("sha256:") and _ids(api, "lab/imported:1") == [image_id]
    assert api.out("history", "--format", "{{.Comment}}", "lab/imported:1").strip() == "from a tar"
    assert api.minidocker("run", "--rm", "lab/imported:1").stdout == "imported\n"
    r = api.docker("import", "-", "lab/imported:2", input=b"not a tar")
    assert r.returncode == 1 and b"Error response from daemon:" in r.stderr and b"tar" in r.stderr
    api.out("rmi", "lab/imported:1")
