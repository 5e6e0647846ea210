"""``minidocker build`` as a user sees it: Docker's classic output, the step cache, the
instructions' effects on the image, multi-stage builds, and the error cases."""

from __future__ import annotations

import json
import os
import re
import tarfile

import pytest

from conftest import needs_root
from helpers_build import (CORPUS, bb, build, built_id, image_config, image_tree,  # noqa: F401
                           minidocker, store, write_context)

pytestmark = needs_root

NONE = ("--network", "none")


def step_lines(output: str) -> list[str]:
    return [l for l in output.splitlines() if l.startswith(("Step ", " ---> ", "Removing",
                                                             "Successfully", "Sending"))]


def images_and_containers(root):
    s = store(root)
    containers = os.listdir(os.path.join(root, "containers")) \
        if os.path.isdir(os.path.join(root, "containers")) else []
    return sorted(s.image_ids()), dict(s.repositories()), containers


# --------------------------------------------------------------------------- the slide
def test_cowsay_slide_builds_and_env_is_overridden_at_run(bb, tmp_path):
    ctx = os.path.join(CORPUS, "cowsay")
    r = build(bb, ctx, "-t", "cowsay", *NONE)
    lines = step_lines(r.stdout)
    assert lines[0] == "Sending build context to Docker daemon  3.072kB"
    assert lines[1] == "Step 1/5 : FROM busybox"
    assert re.fullmatch(r" ---> [0-9a-f]{12}", lines[2])
    assert lines[3] == "Step 2/5 : RUN mkdir -p /usr/games"
    assert re.fullmatch(r" ---> Running in [0-9a-f]{12}", lines[4])
    assert lines[5] == f"Removing intermediate container {lines[4][-12:]}"
    assert lines[7] == "Step 3/5 : COPY cowsay.sh /usr/games/cowsay"
    assert lines[9] == 'Step 4/5 : ENV MESSAGE "nothing to say"'
    assert lines[11] == 'Step 5/5 : CMD sh -c "/usr/games/cowsay $MESSAGE"'
    assert lines[-2] == f"Successfully built {lines[-3][-12:]}"
    assert lines[-1] == "Successfully tagged cowsay:latest"

    config = image_config(bb, "cowsay")["config"]
    assert "MESSAGE=nothing to say" in config["Env"]
    assert config["Cmd"] == ["/bin/sh", "-c", 'sh -c "/usr/games/cowsay $MESSAGE"']

    said = minidocker(bb, "run", "--rm", *NONE, "cowsay")
    assert said.returncode == 0, said.stderr
    assert "< nothing to say >" in said.stdout
    said = minidocker(bb, "run", "--rm", *NONE, "-e", "MESSAGE=Hello world", "cowsay")
    assert "< Hello world >" in said.stdout
    assert "(oo)" in said.stdout


def test_run_output_is_streamed_between_the_step_lines(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo out; echo err >&2\n"})
    r = build(bb, ctx, *NONE)
    out = r.stdout.splitlines()
    running = next(i for i, l in enumerate(out) if l.startswith(" ---> Running in"))
    assert out[running + 1] == "out"
    assert "err" in r.stdout + r.stderr
    assert not os.listdir(os.path.join(bb, "containers"))   # intermediate container gone


# --------------------------------------------------------------------------- cache
def test_rebuild_uses_the_cache_and_a_changed_file_rebuilds_from_its_step(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nENV A=1\nRUN echo ran > /ran\nCOPY f /f\nRUN cat /f\n",
        "f": "version 1\n"})
    first = build(bb, ctx, "-t", "cached", *NONE).stdout
    assert "Using cache" not in first
    second = build(bb, ctx, "-t", "cached", *NONE).stdout
    assert second.count(" ---> Using cache") == 4
    assert "Running in" not in second
    assert built_id(second) == built_id(first)

    # same content, new mtime: still cached (Docker ignores times)
    os.utime(os.path.join(ctx, "f"), (1, 1))
    assert build(bb, ctx, *NONE).stdout.count("Using cache") == 4

    with open(os.path.join(ctx, "f"), "w") as f:
        f.write("version 2\n")
    third = build(bb, ctx, "-t", "cached", *NONE).stdout
    steps = third.split("Step ")[1:]
    assert "Using cache" in steps[1] and "Using cache" in steps[2]      # ENV, RUN before
    assert "Using cache" not in steps[3] and "Using cache" not in steps[4]  # COPY and after
    assert "version 2" in third
    assert built_id(third) != built_id(first)

    fourth = build(bb, ctx, "--no-cache", *NONE).stdout
    assert "Using cache" not in fourth


def test_build_args_are_part_of_the_run_cache_key(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG V=1\nRUN echo v=$V\n"})
    build(bb, ctx, *NONE)
    # Step 3/3 is the RUN: another value of V is another cache key, so it runs again...
    changed = build(bb, ctx, *NONE, "--build-arg", "V=2").stdout.split("Step ")[1:]
    assert "v=2" in changed[2]
    assert "Running in" in changed[2] and "Using cache" not in changed[2]
    # ...and the first value still finds its step in the cache: no container runs
    same = build(bb, ctx, *NONE).stdout.split("Step ")[1:]
    assert "Using cache" in same[2] and "Running in" not in same[2]
    assert "v=1" not in same[2]


# --------------------------------------------------------------------------- instructions
def test_quiet_prints_only_the_image_id(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo noisy\nLABEL a=b\n"})
    r = build(bb, ctx, "-q", *NONE)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout)
    assert store(bb).has_image(r.stdout.strip())


def test_dockerfile_flag_target_and_build_args(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"other.Dockerfile":
        "ARG BASE=busybox\n"
        "FROM $BASE AS first\nARG WHO=nobody\nENV WHO=$WHO\n"
        "FROM first AS second\nLABEL stage=second\n"
        "FROM busybox\nLABEL stage=last\n"})
    r = build(bb, ctx, "-f", os.path.join(ctx, "other.Dockerfile"), "--target", "first",
              "--build-arg", "WHO=me", "--build-arg", "UNUSED=1", "-t", "t1")
    assert "Step 1/4 : ARG BASE=busybox" in r.stdout
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in r.stdout
    config = image_config(bb, "t1")["config"]
    assert "WHO=me" in config["Env"] and "stage" not in (config.get("Labels") or {})
    r = build(bb, ctx, "-f", "other.Dockerfile", "-t", "t2")
    assert image_config(bb, "t2")["config"]["Labels"] == {"stage": "last"}
    r = build(bb, ctx, "-f", "other.Dockerfile", "--target", "nope", ok=False)
    assert r.returncode == 1 and "failed to reach build target nope" in r.stderr


def test_shell_healthcheck_onbuild_expose_range(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        'FROM busybox\n'
        'SHELL ["/bin/sh", "-ec"]\n'
        'RUN echo "shell: $0 $-" > /shell.txt\n'
        'CMD echo hi\n'
        'EXPOSE 7000-7002/udp 80\n'
        'HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD wget -q localhost || exit 1\n'
        'ONBUILD RUN echo triggered > /onbuild.txt\n'
        'STOPSIGNAL 9\n'})
    build(bb, ctx, "-t", "parent", *NONE)
    config = image_config(bb, "parent")["config"]
    # Docker's reference: SHELL changes the shell form of RUN, CMD and ENTRYPOINT
    assert config["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert set(config["ExposedPorts"]) == {"7000/udp", "7001/udp", "7002/udp", "80/tcp"}
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
                                     "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
                                     "Retries": 3}
    assert config["OnBuild"] == ["RUN echo triggered > /onbuild.txt"]
    shell_line = image_tree(bb, "parent")["shell.txt"][4]
    assert shell_line.startswith("shell: /bin/sh ") and "e" in shell_line.split()[-1]

    child = write_context(tmp_path / "child", {"Dockerfile": "FROM parent\nLABEL child=1\n"})
    r = build(bb, child, "-t", "child", *NONE)
    assert "# Executing 1 build trigger" in r.stdout
    assert image_tree(bb, "child")["onbuild.txt"][4] == "triggered\n"
    assert not image_config(bb, "child")["config"].get("OnBuild")


def test_entrypoint_resets_an_inherited_cmd(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": 'FROM busybox\nENTRYPOINT ["/bin/echo"]\n'})
    build(bb, ctx, "-t", "ep")
    config = image_config(bb, "ep")["config"]
    assert config["Entrypoint"] == ["/bin/echo"] and not config.get("Cmd")
    r = minidocker(bb, "run", "--rm", *NONE, "ep", "hello", "there")
    assert r.stdout == "hello there\n"


def test_user_that_expands_to_nothing_unsets_the_user(bb, tmp_path):
    """``USER $EMPTY`` is one argument to Docker (counted before expansion): it sets the
    user to "", so the next RUN and the container run as root again; the history says
    ``USER `` as Docker's does. ``USER`` with no word at all is still an error (Docker's parser says so)."""
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        'FROM busybox\n'
        'USER nobody\n'
        'RUN id -u > /tmp/before\n'
        'ARG EMPTY\n'
        'USER $EMPTY\n'
        'RUN id -u > /after\n'})
    r = build(bb, ctx, "-t", "unset-user", *NONE)
    assert "Step 5/6 : USER $EMPTY" in r.stdout
    assert image_config(bb, "unset-user")["config"].get("User", "") == ""
    assert image_tree(bb, "unset-user")["tmp/before"][4] == "65534\n"
    assert image_tree(bb, "unset-user")["after"][4] == "0\n"
    history = [h["created_by"] for h in image_config(bb, "unset-user")["history"]]
    assert "/bin/sh -c #(nop)  USER " in history
    out = minidocker(bb, "run", "--rm", *NONE, "unset-user", "id", "-u")
    assert out.stdout == "0\n", out.stderr

    bad = write_context(tmp_path / "bad", {"Dockerfile": "FROM busybox\nUSER\n"})
    r = build(bb, bad, *NONE, ok=False)
    assert r.returncode == 1 and "Dockerfile:2: USER requires at least one argument" in r.stderr


def test_copy_heredoc_and_add_archive_and_scratch(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "FROM scratch\n"
        "COPY <<EOF /etc/motd\nwelcome\nEOF\n"
        "ADD layer.tar /\n"
        "COPY --chmod=600 --chown=7:8 secret /secret\n",
        "secret": "s3cret\n", "payload/bin/tool": "#!/bin/sh\n"})
    with tarfile.open(os.path.join(ctx, "layer.tar"), "w") as tar:
        tar.add(os.path.join(ctx, "payload"), arcname=".")
    build(bb, ctx, "-t", "fromscratch")
    tree = image_tree(bb, "fromscratch")
    assert tree["etc/motd"][4] == "welcome\n"
    assert tree["bin/tool"][4] == "#!/bin/sh\n"
    assert tree["secret"][:4] == ("file", "0o600", 7, 8)
    config = image_config(bb, "fromscratch")
    assert len(config["rootfs"]["diff_ids"]) == 3
    assert config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_copy_from_an_image_and_symlinked_destination(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "FROM busybox\n"
        "RUN mkdir -p /real && ln -s /real /via-link\n"
        "COPY --from=busybox /etc/passwd /via-link/\n"})
    build(bb, ctx, "-t", "linked", *NONE)
    tree = image_tree(bb, "linked")
    assert tree["via-link"][0] == "link"
    assert tree["real/passwd"] == image_tree(bb, "busybox")["etc/passwd"]


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("dockerfile, line, message", [
    ("FROM busybox\nFOOBAR x\n", 2, "unknown instruction: FOOBAR"),
    ("RUN echo hi\nFROM busybox\n", 1, "RUN before the first FROM"),
    ("ARG X=1\n", None, "no FROM instruction"),
    ('FROM busybox\nRUN ["echo", 1]\n', 2, "when using JSON array syntax"),
    ('FROM busybox\nSHELL /bin/bash -c\n', 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nENV A=1\nCOPY missing.txt /\n", 3, "file not found in build context"),
    ("FROM busybox\nCOPY ignored.txt /\n", 2, "file not found in build context or excluded by .dockerignore"),
    ("FROM busybox\nCOPY ../outside /\n", 2, "forbidden path outside the build context"),
    ("FROM busybox\nLABEL a=b\nCOPY --from=nostage /x /x\n", 3, "--from=nostage: no build stage"),
    ("FROM busybox\nCOPY a.txt b.txt /dest\n", 2, "the destination must be a directory and end with a /"),
    ("FROM nosuchimage\n", 1, "Unable to find image 'nosuchimage:latest' locally"),
    ("FROM busybox\nEXPOSE 99999\n", 2, "invalid containerPort: 99999"),
    ('FROM busybox\nENV A="${B:?must be set}"\n', 2, "B: must be set"),
])
def test_bad_input_fails_cleanly(bb, tmp_path, dockerfile, line, message):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile, "a.txt": "a", "b.txt": "b",
                                           "ignored.txt": "i", ".dockerignore": "ignored.txt\n"})
    before = images_and_containers(bb)
    r = build(bb, ctx, "-t", "broken", ok=False)
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    where = os.path.join(ctx, "Dockerfile") + (f":{line}: " if line else "")
    assert where in err[0] and message in err[0]
    assert images_and_containers(bb) == before      # no image, tag or container left


def test_failing_run_gives_dockers_message_and_leaves_nothing(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "FROM busybox\nLABEL x=1\nRUN echo before; exit 3\nRUN echo never\n"})
    before = images_and_containers(bb)
    r = build(bb, ctx, "-t", "failing", *NONE, ok=False)
    assert r.returncode == 1
    assert "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3" in r.stderr
    assert "before" in r.stdout and "never" not in r.stdout
    assert "Removing intermediate container" in r.stdout
    assert images_and_containers(bb) == before

    exec_form = write_context(tmp_path / "exec", {"Dockerfile": 'FROM busybox\nRUN ["false"]\n'})
    r = build(bb, exec_form, *NONE, ok=False)
    assert "The command '[\"false\"]' returned a non-zero code: 1" in r.stderr


def test_bad_tag_is_refused_before_building(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    r = build(bb, ctx, "-t", "Bad:Tag:x", ok=False)
    assert r.returncode == 125 and "invalid reference format" in r.stderr


def test_dockerfile_from_stdin_with_heredocs(bb, tmp_path):
    import subprocess
    import sys
    dockerfile = ("FROM busybox\n"
                  "RUN cat <<EOF > /fed.txt\nline one\nline two\nEOF\n"
                  "RUN <<EOT\necho script > /script.txt\nEOT\n")
    r = subprocess.run([sys.executable, "-m", "minidocker", "build", "--network", "none",
                        "-t", "stdin", "-"], input=dockerfile, capture_output=True, text=True,
                       env={**os.environ, "MINIDOCKER_ROOT": bb}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Step 2/3 : RUN cat <<EOF > /fed.txt" in r.stdout
    tree = image_tree(bb, "stdin")
    assert tree["fed.txt"][4] == "line one\nline two\n"
    assert tree["script.txt"][4] == "script\n"
    assert not os.listdir(os.path.join(bb, "tmp"))   # the scratch Dockerfile is gone


def test_unsupported_flags_are_refused(bb, tmp_path):
    for text, message in [("COPY --parents a.txt /x/", "COPY --parents is not supported"),
                          ("RUN --mount=type=cache,target=/x true", "RUN --mount is not supported"),
                          ("FROM --platform=linux/s390x busybox", "minidocker builds only for")]:
        ctx = write_context(tmp_path / str(abs(hash(text))), {
            "Dockerfile": ("" if text.startswith("FROM") else "FROM busybox\n") + text + "\n",
            "a.txt": "a"})
        r = build(bb, ctx, ok=False)
        assert r.returncode == 1 and message in r.stderr, r.stderr


def test_proxy_build_args_reach_run_but_not_the_cache_key(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo proxy=$http_proxy > /p\n"})
    build(bb, ctx, *NONE, "-t", "p1", "--build-arg", "http_proxy=http://127.0.0.1:3128")
    assert image_tree(bb, "p1")["p"][4] == "proxy=http://127.0.0.1:3128\n"
    r = build(bb, ctx, *NONE, "-t", "p2", "--build-arg", "http_proxy=http://127.0.0.1:9999")
    assert "Using cache" in r.stdout and "not consumed" not in r.stdout
    assert image_config(bb, "p1")["config"]["Image"]     # the parent, as Docker records it


def test_arg_scope_ends_with_its_stage(bb, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "ARG GLOBAL=g\n"
        "FROM busybox AS one\nARG LOCAL=l\nLABEL local=$LOCAL global=$GLOBAL\n"
        "FROM busybox\nARG GLOBAL\nLABEL local=$LOCAL global=$GLOBAL\n"})
    build(bb, ctx, "-t", "scoped", "--target", "one")
    assert image_config(bb, "scoped")["config"]["Labels"] == {"local": "l", "global": ""}
    build(bb, ctx, "-t", "scoped2")
    assert image_config(bb, "scoped2")["config"]["Labels"] == {"local": "", "global": "g"}


def test_run_writes_into_a_declared_volume_are_discarded(bb, tmp_path):
    # Docker: "If any build steps change the data within the volume after it has been
    # declared, those changes will be discarded."
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "FROM busybox\nRUN mkdir /vol && echo before > /vol/kept\n"
        "VOLUME /vol\nRUN echo after > /vol/lost && echo outside > /elsewhere\n"})
    build(bb, ctx, "-t", "vol", *NONE)
    tree = image_tree(bb, "vol")
    assert tree["vol/kept"][4] == "before\n"
    assert "vol/lost" not in tree and tree["elsewhere"][4] == "outside\n"
    volumes = os.path.join(bb, "volumes")
    assert not os.path.isdir(volumes) or not os.listdir(volumes)   # no anonymous volume left


def test_an_image_with_the_same_layer_twice_runs(bb, tmp_path):
    # Two steps that change the same file the same way make identical layers (one diff
    # id twice in rootfs.diff_ids, as Docker allows); overlayfs refuses a lowerdir listed
    # twice (ELOOP), so the container must still start -- the demo's cowsay build does
    # exactly this (COPY an executable script, then RUN chmod +x on it).
    ctx = write_context(tmp_path / "ctx", {"Dockerfile":
        "FROM busybox\nCOPY hello /hello\nCOPY hello /hello\n", "hello": "twice\n"})
    build(bb, ctx, "-t", "twice")
    diff_ids = image_config(bb, "twice")["rootfs"]["diff_ids"]
    assert len(diff_ids) == 3 and diff_ids[1] == diff_ids[2]
    r = minidocker(bb, "run", "--rm", *NONE, "twice", "cat", "/hello")
    assert (r.returncode, r.stdout) == (0, "twice\n"), r.stderr
    r = minidocker(bb, "run", "--name", "t2", *NONE, "twice", "sh", "-c", "echo more >> /hello")
    assert r.returncode == 0, r.stderr
    assert minidocker(bb, "diff", "t2").stdout == "C /hello\n"
    committed = minidocker(bb, "commit", "t2", "twice:more")
    assert committed.returncode == 0, committed.stderr
    r = minidocker(bb, "run", "--rm", *NONE, "twice:more", "cat", "/hello")
    assert (r.returncode, r.stdout) == (0, "twice\nmore\n"), r.stderr
