"""The same OCI bundle under the real runc and under minidocker's runtime.

The design promise of the bundle boundary (DESIGN.md): what minidocker writes, runc
runs, and the container looks the same from inside. Each test runs one script in one
bundle twice, ``runc run`` then ``runtime.create/start/wait``, and compares what the
container printed: pid, hostname, user, environment, capabilities, the mount table
(without the ids and device numbers that differ from run to run), /dev, cgroup limits.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess

import pytest

from conftest import needs_root
from helpers_runtime import new_id, overlay_bundle, run_bundle, write_bundle_spec
from minidocker.kernel import cgroups

#: cgroup v2 (the VM pass, most learners' machines) or v1 (the CI host).
V2 = cgroups.detect_version() == 2

pytestmark = [needs_root,
              pytest.mark.skipif(shutil.which("runc") is None,
                                 reason="runc is not installed (apt-get install runc)")]

PROBE = r"""
echo "pid=$$"
echo "hostname=$(hostname)"
echo "id=$(id)"
echo "pwd=$(pwd)"
env | sort | sed 's/^/env /'
grep -E '^(Cap|NoNewPrivs|Uid|Gid|Groups)' /proc/self/status
sed 's/^/mount /' /proc/self/mountinfo
ls -ln /dev | awk 'NR > 1 {print "dev", $1, $3, $4, $5, $6, $NF}'
sed 's/^/cgroup /' /proc/self/cgroup
for f in memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us devices/devices.list \
         memory.max pids.max cpu.max cpu.weight; do
  [ -e /sys/fs/cgroup/$f ] && sed "s|^|limit $f |" /sys/fs/cgroup/$f
done
ulimit -a | sed 's/^/ulimit /'
"""


def normalise(output: str) -> list[str]:
    """Drop what differs between any two runs: mount ids, device numbers and the source
    name of cgroup mounts (runc names the systemd one ``systemd``)."""
    lines = []
    for line in output.splitlines():
        if line.startswith("mount "):
            fields = line.split()[1:]
            sep = fields.index("-")
            point, options, fstype, super_options = fields[4], fields[5], fields[sep + 1], fields[sep + 3]
            line = f"mount {point} {options} {fstype} {super_options}"
        lines.append(line)
    return sorted(lines)


def assert_same(ours: str, theirs: str) -> None:
    """The container looked the same under both runtimes. On cgroup v2 there is one
    known difference, in how devices are guarded: runc attaches an eBPF program to the
    container's cgroup; minidocker mounts /dev ``nodev`` and binds the standard devices
    from the host's /dev (see ``minidocker.runtime.rootfs_setup.device_protection``), so those
    mounts, and the masked /proc files bound from /dev/null, come from devtmpfs."""
    ours_lines, theirs_lines = normalise(ours), normalise(theirs)
    if V2:
        ours_lines, theirs_lines = v2_devices_view(ours_lines, True), v2_devices_view(theirs_lines, False)
    assert ours_lines == theirs_lines, "\n".join(
        difflib.unified_diff(theirs_lines, ours_lines, "runc", "minidocker", lineterm=""))


def v2_devices_view(lines: list[str], ours: bool) -> list[str]:
    """The normalised lines with the device-guarding difference taken out (see above)."""
    view = []
    for line in lines:
        if line.startswith("mount "):
            _, point, options, fstype = line.split()[:4]
            if ours and point == "/dev":
                assert ",nodev" in options, line
                line = line.replace(",nodev", "", 1)
            elif ours and point.startswith("/dev/") and fstype == "devtmpfs":
                continue                        # a bind of the host's /dev/null, zero...
            elif point.startswith("/proc/") and options.startswith("rw") and fstype in ("tmpfs", "devtmpfs"):
                line = f"mount {point} masked by a bind of /dev/null"
        view.append(line)
    return sorted(view)


def run_with_runc(bundle: str, cid: str, state_root: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["runc", "--root", state_root, "run", "--bundle", bundle, cid],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    finally:
        # runc removes its container on exit; make sure of it if something went wrong.
        subprocess.run(["runc", "--root", state_root, "delete", "--force", cid],
                       capture_output=True)


def both_ways(lower: str, tmp_path, args, **spec_kwargs):
    """(runc's CompletedProcess, minidocker's Result) for one bundle."""
    cid = new_id()
    bundle = str(tmp_path / "bundle")
    with overlay_bundle(lower, bundle):
        # runc's own `runc spec` sets this limit; without it each runtime passes on
        # whatever it was started with (Go raises its soft limit to the hard one).
        spec_kwargs.setdefault("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}])
        write_bundle_spec(bundle, args, cid, **spec_kwargs)
        theirs = run_with_runc(bundle, cid, str(tmp_path / "runc-state"))
        ours = run_bundle(bundle, cid)
    return theirs, ours


def test_default_container_looks_the_same(busybox_rootfs, tmp_path, data_root):
    theirs, ours = both_ways(busybox_rootfs, tmp_path, ["sh", "-c", PROBE],
                             memory=64 << 20, pids_limit=30, cpus=1.5, env=["GREETING=hello"])
    assert theirs.returncode == 0, theirs.stderr
    assert ours.code == 0, ours.err
    assert_same(ours.out, theirs.stdout)
    # and the comparison compared what matters
    out = ours.out.splitlines()
    assert "pid=1" in out and "env GREETING=hello" in out
    if V2:
        assert "limit memory.max 67108864" in out and "limit cpu.max 150000 100000" in out
    else:
        assert "limit memory/memory.limit_in_bytes 67108864" in out
        assert "limit cpu/cpu.cfs_quota_us 150000" in out
    assert any(re.match(r"mount /proc/sys ro,", line) for line in normalise(ours.out))


def test_user_groups_workdir_and_read_only_root_look_the_same(busybox_rootfs, tmp_path, data_root):
    script = PROBE + "touch /x 2>/dev/null; echo touch=$?\n"
    theirs, ours = both_ways(busybox_rootfs, tmp_path, ["sh", "-c", script], uid=1000, gid=1000,
                             additional_gids=[10, 20], cwd="/tmp", readonly_rootfs=True,
                             no_new_privileges=True, hostname="custom-name")
    assert theirs.returncode == 0, theirs.stderr
    assert_same(ours.out, theirs.stdout)
    out = ours.out.splitlines()
    assert "hostname=custom-name" in out and "touch=1" in out
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out


@pytest.mark.parametrize("args, code", [
    (["sh", "-c", "exit 42"], 42),
    (["tail", "/dev/zero"], 137),   # OOM-killed under the memory limit
])
def test_exit_codes_are_the_same(busybox_rootfs, tmp_path, data_root, args, code):
    theirs, ours = both_ways(busybox_rootfs, tmp_path, args, memory=16 << 20)
    assert ours.code == code
    assert theirs.returncode == code, theirs.stderr


def test_seccomp_profile_means_the_same_to_runc(busybox_rootfs, tmp_path, data_root):
    script = ("grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?; "
              "unshare -n true 2>/dev/null; echo unshare-net=$?; echo done")
    theirs, ours = both_ways(busybox_rootfs, tmp_path, ["sh", "-c", script], seccomp=True)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.out == theirs.stdout
    assert ours.out.split() == ["Seccomp:", "2", "unshare=1", "unshare-net=1", "done"]
