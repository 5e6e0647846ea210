"""Every tutorial's commands, run in order, print what the tutorial says they print."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, needs_root
from tutorial_runner import describe_failure, matches, parse, run_step

TUTORIALS = sorted(glob.glob(os.path.join(REPO, "tutorials", "[0-9]*.md")))
RUN_ALL = os.environ.get("MINIDOCKER_TUTORIALS_ALL") == "1"


def test_runner_parses_and_matches():
    steps = parse("intro\n```console\n$ echo a \\\n  b\na b\n$ cat <<EOF\nx\nEOF\nx\n```\n"
                  "```console skip-ci\n$ false\n```\n")
    assert [s.command for s in steps] == ["echo a \\\n  b", "cat <<EOF\nx\nEOF", "false"]
    assert steps[0].expected == ["a b"] and steps[1].expected == ["x"]
    assert steps[2].skip_ci and not steps[0].skip_ci
    assert matches(["id {id}", "...", "end"], ["id 1234", "x", "y", "end"])
    assert matches(["...", "end"], ["end"])
    assert not matches(["id {id}"], ["id "])
    assert not matches(["a"], ["a", "b"])


def _cleanup_root(root: str, env: dict) -> None:
    md = [sys.executable, "-m", "minidocker"]
    ids = subprocess.run(md + ["ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(md + ["rm", "-f", *ids], env=env, capture_output=True)
    subprocess.run(md + ["network", "prune", "-f"], env=env, capture_output=True)
    subprocess.run(md + ["volume", "prune", "-f"], env=env, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@needs_root
@pytest.mark.parametrize("path", TUTORIALS, ids=[os.path.basename(p) for p in TUTORIALS])
def test_tutorial(path, tmp_path):
    with open(path) as f:
        steps = parse(f.read())
    assert steps, f"{path} has no console block to check"
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    env = dict(os.environ)
    env.update(MINIDOCKER_ROOT=str(root), TUT=str(scratch),
               PATH=os.pathsep.join([os.path.join(REPO, "tools"), os.path.dirname(sys.executable),
                                     env.get("PATH", "")]))
    reaper = None
    if "minidocker-runtime" in "".join(step.command for step in steps):
        # ``minidocker-runtime create`` exits and leaves the container's init to the
        # nearest subreaper: this test plays conmon's part (see helpers_runtime_cli)
        from helpers_runtime_cli import ContainerReaper
        reaper = ContainerReaper()
    try:
        for step in steps:
            if step.skip_ci and not RUN_ALL:
                continue
            code, actual = run_step(step, REPO, env)
            assert code == 0 and matches(step.expected, actual), \
                describe_failure(path, step, code, actual)
    finally:
        _cleanup_root(str(root), env)
        if reaper is not None:
            reaper.stop()
