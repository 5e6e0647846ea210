"""Helpers for tests that drive the ``minidocker`` command: a data root with a busybox image,
and a function to run the CLI in it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import IS_ROOT


class Minidocker:
    """Runs ``python -m minidocker ARGS`` against one data root."""

    def __init__(self, root: str):
        self.root = root
        self.env = dict(os.environ, MINIDOCKER_ROOT=root)

    def __call__(self, *args, input=None, timeout=60, check=False, env=None) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], input=input,
                           capture_output=True, text=True, timeout=timeout,
                           env={**self.env, **(env or {})})
        if check and r.returncode != 0:
            raise AssertionError(f"minidocker {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def out(self, *args, **kw) -> str:
        return self(*args, check=True, **kw).stdout

    def cleanup(self) -> None:
        """Remove every container of this root (the tests' own ``docker rm -f $(docker ps -aq)``)."""
        ids = self("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            self("rm", "-f", *ids)


@pytest.fixture(scope="module")
def md(tmp_path_factory):
    """A data root with ``busybox:latest`` bootstrapped, shared by one test module; every
    container is removed after each test module."""
    if not IS_ROOT:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    root = str(tmp_path_factory.mktemp("mdroot"))
    m = Minidocker(root)
    r = m("bootstrap", "busybox", timeout=120)
    if r.returncode != 0:
        pytest.skip(f"cannot bootstrap busybox: {r.stderr.strip()}")
    yield m
    m.cleanup()
