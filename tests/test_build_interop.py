"""Conformance: the corpus builds the same under minidocker and under the real
``podman build`` (buildah): the same config (Env, Cmd, Entrypoint, WorkingDir, User,
ExposedPorts, Volumes, Labels, StopSignal) and the same files (paths, kinds, modes,
owners, contents) in the final image."""

from __future__ import annotations

import os
import shutil
import tarfile

import pytest

from conftest import needs_root
from helpers_build import (CORPUS, Podman, bb, build, comparable_config, comparable_tree,  # noqa: F401
                           image_config, image_tree)

pytestmark = [needs_root, pytest.mark.interop]

CASES = sorted(d for d in os.listdir(CORPUS) if os.path.isfile(os.path.join(CORPUS, d, "Dockerfile")))
BUILD_ARGS = {"args": ["--build-arg", "VERSION=2.5", "--build-arg", "WHO=arg"]}


def prepare_context(case: str, dest: str) -> str:
    """A private copy of a corpus case (with modes git cannot keep, and generated files)."""
    ctx = os.path.join(dest, case)
    shutil.copytree(os.path.join(CORPUS, case), ctx, symlinks=True)
    if case == "copy":
        os.chmod(os.path.join(ctx, "conf", "app.conf"), 0o600)
        os.chmod(os.path.join(ctx, "src", "run.sh"), 0o755)
    if case == "add_archive":
        with tarfile.open(os.path.join(ctx, "app.tar.gz"), "w:gz") as tar:
            def owned(info):
                info.uid, info.gid, info.uname, info.gname = 1, 2, "", ""
                return info
            tar.add(os.path.join(ctx, "archive-src", "pkg"), arcname="pkg", filter=owned)
    return ctx


@pytest.fixture(scope="module")
def podman(busybox_rootfs):
    p = Podman(busybox_rootfs)
    yield p
    p.close()


@pytest.mark.parametrize("case", CASES)
def test_corpus_builds_like_podman(case, bb, podman, tmp_path):
    ctx = prepare_context(case, str(tmp_path))
    extra = BUILD_ARGS.get(case, [])
    build(bb, ctx, "--network", "none", "-t", f"corpus-{case}", *extra)
    podman.build(ctx, f"localhost/corpus-{case}", *extra)

    ours = comparable_config(image_config(bb, f"corpus-{case}")["config"])
    theirs = comparable_config(podman.config(f"localhost/corpus-{case}"))
    assert ours == theirs

    our_tree = comparable_tree(image_tree(bb, f"corpus-{case}"))
    their_tree = comparable_tree(podman.tree(f"localhost/corpus-{case}"))
    differences = {path: (our_tree.get(path), their_tree.get(path))
                   for path in sorted(set(our_tree) | set(their_tree))
                   if our_tree.get(path) != their_tree.get(path)}
    assert differences == {}
