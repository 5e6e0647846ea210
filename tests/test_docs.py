"""The Sphinx documentation builds with warnings as errors (a broken reference fails CI)."""

import os
import subprocess
import sys

import pytest

from conftest import REPO


def test_sphinx_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                        os.path.join(REPO, "docs"), str(tmp_path / "html")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "html" / "cli.html").exists()
