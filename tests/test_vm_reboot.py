"""The power cut: a machine that dies in the middle of a ``pull`` and boots again.

Only inside the VM, driven by ``tests/vm/run --vm-reboot`` (see ``reboot_test`` in
tests/vm/harness.py), which boots twice with a disk that outlives the guest
(``/dev/vda``, ext4):

1. ``test_phase1``: a data root and a registry on that disk, busybox and a large image
   in the registry, a container running; everything so far is synced (the machine has
   been up a while), then a ``pull`` starts; once it is writing, what it wrote so far is
   synced, and the guest asks the harness to cut the power (qemu is SIGKILLed: no sync,
   no unmount; what the pull wrote since is lost);
2. ``test_phase2``, after the next boot: ``system check`` is clean or repaired to clean,
   the container that was running is reconciled to exited (its old pid now names
   another process, or none), the same pull completes and a container from it works.

Elsewhere (the host suite) both phases are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO

PHASE = os.environ.get("MINIDOCKER_VM_REBOOT")
pytestmark = pytest.mark.skipif(not PHASE, reason="the VM's power-cut pass only "
                                "(tests/vm/run --vm-reboot)")

DISK = "/dev/vda"
MOUNT = "/mnt/minidocker-reboot"
ROOT = os.path.join(MOUNT, "root")
REGISTRY_ROOT = os.path.join(MOUNT, "registry")
ADDR = "127.0.0.1:5000"
IMAGE = f"{ADDR}/reboot/big:1"
#: printed to the console when the pull is under way (tests/vm/harness.py's POWER_CUT_MARK)
POWER_CUT_MARK = "MINIDOCKER-VM-CUT-THE-POWER-NOW"


def md(*args, check=True, timeout=600):
    r = subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], cwd=REPO,
                       capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "MINIDOCKER_ROOT": ROOT})
    if check and r.returncode != 0:
        raise AssertionError(f"minidocker {' '.join(map(str, args))} -> {r.returncode}\n"
                             f"{r.stdout}{r.stderr}")
    return r


def console(text: str) -> None:
    with open("/dev/console", "w") as f:
        f.write(text + "\n")


def mount_disk() -> None:
    subprocess.run(["busybox", "modprobe", "virtio_blk"], check=False)
    for _ in range(100):
        if os.path.exists(DISK):
            break
        time.sleep(0.1)
    os.makedirs(MOUNT, exist_ok=True)
    subprocess.run(["mount", "-t", "ext4", DISK, MOUNT], check=True)


def start_registry() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "minidocker", "registry", "serve", "-q",
                             "--addr", ADDR, "--root", REGISTRY_ROOT], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://{ADDR}/v2/", timeout=2).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the registry did not start")


def test_phase1():
    if PHASE != "1":
        pytest.skip("phase 2 boots here")
    mount_disk()
    md("bootstrap", "busybox")
    context = os.path.join(MOUNT, "context")
    os.makedirs(context, exist_ok=True)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nRUN head -c 12000000 /dev/urandom > /big && echo ok > /marker\n")
    md("build", "-q", "--network", "none", "-t", IMAGE, context)
    registry = start_registry()
    md("push", IMAGE)
    md("rmi", IMAGE)
    cid = md("run", "-d", "--network", "none", "busybox", "sleep", "1000").stdout.strip()
    with open(os.path.join(MOUNT, "running-container"), "w") as f:
        f.write(cid)
    os.sync()       # all of the above is on the disk: the machine has been up a while
    subprocess.Popen([sys.executable, "-m", "minidocker", "pull", IMAGE], cwd=REPO,
                     env={**os.environ, "MINIDOCKER_ROOT": ROOT},
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = os.path.join(ROOT, "tmp")
    for _ in range(600):
        if any(n.startswith(("blob-", "layer-")) for n in os.listdir(tmp)):
            break
        time.sleep(0.05)
    # Some of the pull reaches the disk (the kernel writes back now and then), the
    # rest is lost with the power: a sync half-way, then the cut.
    time.sleep(0.5)
    os.sync()
    console(POWER_CUT_MARK)
    time.sleep(600)         # the harness kills the machine now
    registry.kill()
    pytest.fail("the power was not cut")


def test_phase2():
    if PHASE != "2":
        pytest.skip("phase 1 boots here")
    mount_disk()
    with open(os.path.join(MOUNT, "running-container")) as f:
        cid = f.read().strip()
    r = md("system", "check", check=False)
    console(f"after the power cut, system check says ({r.returncode}):\n{r.stdout}{r.stderr}")
    assert r.returncode in (0, 1)
    if r.returncode == 1:
        assert f"container {cid[:12]}: marked running, but its monitor is gone" in r.stdout
        fix = md("system", "check", "--repair", check=False)
        console(fix.stdout)
        assert fix.returncode == 0, fix.stdout + fix.stderr
    r = md("system", "check", check=False)
    assert (r.returncode, r.stdout) == (0, "")
    assert "Exited (255)" in md("ps", "-a").stdout
    registry = start_registry()
    try:
        md("pull", IMAGE)
        assert md("run", "--rm", "--network", "none", IMAGE, "cat", "/marker").stdout == "ok\n"
        md("start", cid)
        assert md("exec", cid, "echo", "back").stdout == "back\n"
        md("rm", "-f", cid)
        assert md("system", "check", check=False).stdout == ""
    finally:
        registry.kill()
        registry.wait()
        subprocess.run(["umount", MOUNT], check=False)
