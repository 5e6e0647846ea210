"""The Vagrant lab's Vagrantfile is valid (``vagrant validate``; no VM is booted here)."""

import os
import shutil
import subprocess

import pytest

from conftest import REPO


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed")
def test_vagrantfile_validates(tmp_path):
    # --ignore-provider: the CI machine has no VirtualBox/libvirt; the provider blocks are
    # still parsed, only not checked against an installed provider.
    # Vagrant keeps its state in .vagrant/ next to the Vagrantfile: here, in tmp.
    env = dict(os.environ, VAGRANT_DOTFILE_PATH=str(tmp_path / "dot-vagrant"),
               VAGRANT_HOME=str(tmp_path / "vagrant-home"))
    r = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout
