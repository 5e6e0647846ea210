"""minidocker's layers hold: no module imports from a layer above its own.

The order is declared once, as import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``, with the reasons in its comments); this test runs
``lint-imports`` on the checkout and fails with its report, so that a wrong-way import
fails the suite (in CI, and in ``scripts/test.sh``). import-linter reads the imports
with :mod:`ast` (grimp), imports nothing, and needs no root: well under a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def lint_imports(cwd: str) -> subprocess.CompletedProcess:
    """``lint-imports`` (installed with the test extras, next to this Python) run in
    ``cwd``, which holds the ``pyproject.toml`` with the contracts."""
    program = (shutil.which("lint-imports", path=os.path.dirname(sys.executable))
               or shutil.which("lint-imports"))
    if program is None:
        pytest.fail("lint-imports not found: install the test extras (./scripts/setup.sh "
                    "or pip install -e '.[test]')", pytrace=False)
    # --no-cache: no .import_linter_cache directory left in the checkout
    return subprocess.run([program, "--no-cache"], cwd=cwd, capture_output=True, text=True)


def test_the_imports_follow_the_layers():
    result = lint_imports(REPO)
    if result.returncode != 0:
        pytest.fail("lint-imports found imports against the layers declared in "
                    f"pyproject.toml:\n{result.stdout}{result.stderr}", pytrace=False)
    assert "0 broken" in result.stdout


def test_a_wrong_way_import_is_caught(tmp_path):
    """Guards the contracts themselves: on a copy of the package where the kernel layer
    imports the engine, lint-imports fails and names the import."""
    shutil.copytree(os.path.join(REPO, "minidocker"), tmp_path / "minidocker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "pyproject.toml"), tmp_path / "pyproject.toml")
    with open(tmp_path / "minidocker" / "kernel" / "mounts.py", "a") as f:
        f.write("\nfrom ..engine import containers  # the wrong way\n")
    result = lint_imports(str(tmp_path))
    assert result.returncode != 0, result.stdout
    assert "minidocker.kernel is not allowed to import minidocker.engine" in result.stdout
    assert "minidocker.kernel.mounts -> minidocker.engine.containers" in result.stdout
