"""cgroups: the kernel layer (minidocker.kernel.cgroups) and tools/cgroup.

Three kinds of test:

* pure functions (units, shares -> weight, /proc/PID/cgroup parsing): run anywhere;
* the v2 (and joined-v1) code paths against a *fake* cgroupfs under tmp: files laid out
  and worded as the kernel would show them, so the code's writes can be read back;
* ``kernel`` tests on the machine's real hierarchy, whichever it is (v1 on the
  development machine, v2 in the VM): OOM kill -> 137, pids.max blocks forks, the CPU
  quota throttles, and every cgroup is gone afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from conftest import REPO, needs_root, run_tool
from minidocker.errors import InvalidInput
from minidocker.kernel import cgroups
from minidocker.kernel.cgroups import CgroupError

MB = 1 << 20


def _real_hierarchy_usable() -> str | None:
    try:
        cgroups.detect_version()
    except CgroupError as e:
        return str(e)
    return None


needs_cgroups = pytest.mark.skipif(_real_hierarchy_usable() is not None,
                                   reason=f"no usable cgroup hierarchy: {_real_hierarchy_usable()}")


# --------------------------------------------------------------------------- pure functions
@pytest.mark.parametrize("text,expected", [
    ("32M", 32 * MB), ("32m", 32 * MB), ("64MB", 64 * MB), ("512k", 512 * 1024),
    ("1.5g", 3 * (1 << 29)), ("100000", 100000), ("1GiB", 1 << 30), ("7b", 7),
])
def test_parse_bytes_takes_dockers_units(text, expected):
    assert cgroups.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "M", "12x", "-5M", "1.2.3g"])
def test_parse_bytes_rejects_garbage_with_a_clear_error(text):
    with pytest.raises(InvalidInput, match="invalid size"):
        cgroups.parse_bytes(text)


def test_format_bytes():
    assert cgroups.format_bytes(32 * MB) == "32M"
    assert cgroups.format_bytes(3 * MB // 2) == "1.5M"
    assert cgroups.format_bytes(1 << 30) == "1G"
    assert cgroups.format_bytes(100) == "100B"
    assert cgroups.format_bytes(None) == "unlimited"


def test_cpu_quota_and_shares_to_weight_follow_docker_and_runc():
    assert cgroups.cpu_quota_us(0.5) == 50000
    assert cgroups.cpu_quota_us(1.5) == 150000
    # runc's linear mapping: the ends of both ranges meet, Docker's default 1024 -> 39.
    assert cgroups.cpu_weight_from_shares(2) == 1
    assert cgroups.cpu_weight_from_shares(262144) == 10000
    assert cgroups.cpu_weight_from_shares(1024) == 39


def test_parse_proc_cgroup_v1_and_v2_lines():
    text = ("12:pids:/minidocker/abc\n4:memory:/minidocker/abc\n2:cpu,cpuacct:/minidocker/abc\n"
            "1:name=systemd:/user.slice\n0::/minidocker/abc\n")
    paths = cgroups.parse_proc_cgroup(text)
    assert paths["memory"] == paths["cpu"] == paths["cpuacct"] == "/minidocker/abc"
    assert paths[""] == "/minidocker/abc"
    assert paths["name=systemd"] == "/user.slice"


def test_cgroup_of_a_missing_process_is_a_clear_error():
    with pytest.raises(CgroupError, match="no such process: 4194305"):
        cgroups.cgroup_of_pid(4194305)  # above the kernel's largest pid


def test_open_cgroup_rejects_paths_that_leave_the_hierarchy(tmp_path):
    root = _fake_v2_root(tmp_path)
    for bad in ("../etc", "minidocker/../../x", "", "/"):
        with pytest.raises(InvalidInput):
            cgroups.open_cgroup(bad, mountpoint=root)


def test_no_cgroup_filesystem_is_a_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="no cgroup filesystem found"):
        cgroups.open_cgroup("minidocker/x", mountpoint=str(tmp_path))


# --------------------------------------------------------------------------- fake v2 tree
def _fake_v2_root(tmp_path, controllers="cpuset cpu io memory hugetlb pids rdma misc", enabled=""):
    """The root of a cgroup2 mount as the kernel shows it (the files that matter here)."""
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text(enabled + "\n" if enabled else "")
    (root / "cgroup.procs").write_text("1\n")
    return str(root)


def _read(path):
    with open(path) as f:
        return f.read()


def test_v2_create_enables_controllers_down_to_the_parent_only(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    assert cg.version == 2 and cg.dirs() == [os.path.join(root, "minidocker", "c1")]
    cg.create()
    # Root and minidocker/ hand memory, cpu and pids down to their children ...
    assert set(_read(f"{root}/cgroup.subtree_control").split()) == {"+cpu", "+memory", "+pids"}
    assert set(_read(f"{root}/minidocker/cgroup.subtree_control").split()) == {"+cpu", "+memory", "+pids"}
    # ... but the container's own group enables nothing: it will hold processes.
    assert os.path.isdir(f"{root}/minidocker/c1")
    assert not os.path.exists(f"{root}/minidocker/c1/cgroup.subtree_control")


def test_v2_create_leaves_subtree_control_alone_when_already_enabled(tmp_path):
    root = _fake_v2_root(tmp_path, enabled="cpu io memory pids")
    cgroups.open_cgroup("minidocker/c1", mountpoint=root).create()
    assert _read(f"{root}/cgroup.subtree_control") == "cpu io memory pids\n"


def test_v2_create_enables_only_what_the_parent_has(tmp_path):
    root = _fake_v2_root(tmp_path, controllers="memory pids")
    cgroups.open_cgroup("minidocker/c1", mountpoint=root).create()
    assert set(_read(f"{root}/cgroup.subtree_control").split()) == {"+memory", "+pids"}
    assert set(_read(f"{root}/minidocker/cgroup.subtree_control").split()) == {"+memory", "+pids"}


def test_v2_limits_are_written_as_the_kernel_reads_them(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    cg.create()
    leaf = cg.dirs()[0]
    with open(f"{leaf}/memory.swap.max", "w") as f:  # present when swap accounting is on
        f.write("max\n")
    cg.set_memory(32 * MB)
    cg.set_cpus(0.5)
    cg.set_cpu_shares(1024)
    cg.set_pids(20)
    cg.add(4242)
    assert _read(f"{leaf}/memory.max") == str(32 * MB)
    assert _read(f"{leaf}/memory.swap.max") == "0"      # no swapping past the limit
    assert _read(f"{leaf}/cpu.max") == "50000 100000"   # QUOTA PERIOD, in µs
    assert _read(f"{leaf}/cpu.weight") == "39"
    assert _read(f"{leaf}/pids.max") == "20"
    assert _read(f"{leaf}/cgroup.procs") == "4242"
    cg.set_memory(None)
    cg.set_pids(-1)
    assert _read(f"{leaf}/memory.max") == "max" and _read(f"{leaf}/memory.swap.max") == "max"
    assert _read(f"{leaf}/pids.max") == "max"


def test_v2_bad_limits_are_refused_before_anything_is_written(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    cg.create()
    ncpu = os.cpu_count()
    with pytest.raises(InvalidInput, match=f"range of CPUs is from 0.01 to {ncpu}.00"):
        cg.set_cpus(ncpu + 1)
    with pytest.raises(InvalidInput):
        cg.set_cpus(0)
    with pytest.raises(InvalidInput, match="cpu shares"):
        cg.set_cpu_shares(1)
    assert not os.path.exists(f"{cg.dirs()[0]}/cpu.max")
    assert not os.path.exists(f"{cg.dirs()[0]}/cpu.weight")


def test_v2_stats_and_oom_read_the_kernels_files(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    cg.create()
    leaf = cg.dirs()[0]
    kernel_files = {
        "memory.current": "1048576\n", "memory.peak": "33554432\n", "memory.max": "33554432\n",
        "memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        "cpu.stat": "usage_usec 500000\nuser_usec 400000\nsystem_usec 100000\n"
                    "nr_periods 20\nnr_throttled 15\nthrottled_usec 1500000\n",
        "memory.stat": "anon 524288\nfile 524288\nactive_file 131072\ninactive_file 393216\n",
        "pids.current": "3\n", "pids.max": "max\n", "pids.events": "max 7\n",
        "cgroup.procs": "",
    }
    for name, text in kernel_files.items():
        with open(f"{leaf}/{name}", "w") as f:
            f.write(text)
    stats = cg.stats()
    assert set(stats) == set(cgroups.STATS_KEYS)
    assert stats == {
        "memory_usage": 1048576, "memory_peak": 32 * MB, "memory_limit": 32 * MB, "oom_kills": 1,
        "memory_inactive_file": 393216,
        "cpu_usage_ns": 500_000_000, "cpu_throttled_ns": 1_500_000_000, "cpu_periods": 20,
        "cpu_throttled_periods": 15, "pids_current": 3, "pids_limit": None, "pids_limit_hits": 7,
    }
    assert cg.oom_killed()
    with open(f"{leaf}/memory.events", "w") as f:
        f.write("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    assert not cg.oom_killed()


def test_v2_kill_all_uses_cgroup_kill_when_the_kernel_has_it(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    cg.create()
    leaf = cg.dirs()[0]
    for name in ("cgroup.kill", "cgroup.procs"):
        open(f"{leaf}/{name}", "w").close()
    cg.kill_all()
    assert _read(f"{leaf}/cgroup.kill") == "1"


def test_v2_kill_all_without_cgroup_kill_freezes_signals_and_thaws(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    cg.create()
    leaf = cg.dirs()[0]
    victim = subprocess.Popen(["sleep", "60"])
    try:
        with open(f"{leaf}/cgroup.procs", "w") as f:
            f.write(f"{victim.pid}\n")
        open(f"{leaf}/cgroup.freeze", "w").close()
        assert cg.pids() == [victim.pid]
        cg.kill_all()
        assert victim.wait(timeout=5) == -signal.SIGKILL
        assert _read(f"{leaf}/cgroup.freeze") == "0"   # thawed again after the kill
        assert cg.pids() == []                          # a zombie is in no cgroup
    finally:
        victim.kill()
        victim.wait()


def test_v2_freeze_and_thaw_write_cgroup_freeze(tmp_path):
    root = _fake_v2_root(tmp_path)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=root)
    cg.create()
    leaf = cg.dirs()[0]
    with pytest.raises(CgroupError, match="no freezer"):
        cg.freeze()  # before Linux 5.2 there is no cgroup.freeze
    with open(f"{leaf}/cgroup.freeze", "w") as f:
        f.write("0\n")
    with open(f"{leaf}/cgroup.events", "w") as f:
        f.write("populated 1\nfrozen 1\n")  # what the kernel shows once all have stopped
    cg.freeze()
    assert _read(f"{leaf}/cgroup.freeze") == "1" and cg.is_frozen()
    cg.thaw()
    assert _read(f"{leaf}/cgroup.freeze") == "0"


def test_kill_and_remove_refuse_groups_outside_minidocker(tmp_path):
    root = _fake_v2_root(tmp_path)
    os.mkdir(f"{root}/machine.slice")
    for rel in ("machine.slice", "minidocker"):
        cg = cgroups.open_cgroup(rel, mountpoint=root)
        with pytest.raises(CgroupError, match="refusing to remove"):
            cg.remove()
        with pytest.raises(CgroupError, match="refusing to kill"):
            cg.kill_all()
    assert os.path.isdir(f"{root}/machine.slice")


# --------------------------------------------------------------------------- fake v1 tree
def test_v1_joined_cpu_cpuacct_tree_is_one_directory(tmp_path):
    """Many distributions mount cpu and cpuacct together as ``cpu,cpuacct`` with two
    symlinks to it; the group must then be made (and joined) there once."""
    root = tmp_path / "cgroup"
    for tree in ("memory", "pids", "cpu,cpuacct"):
        (root / tree).mkdir(parents=True)
    os.symlink("cpu,cpuacct", root / "cpu")
    os.symlink("cpu,cpuacct", root / "cpuacct")
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=str(root))
    assert cg.version == 1
    assert sorted(os.path.relpath(d, root) for d in cg.dirs()) == \
        ["cpu,cpuacct/minidocker/c1", "memory/minidocker/c1", "pids/minidocker/c1"]
    cg.create()
    cg.set_cpus(0.25)
    cg.set_cpu_shares(512)
    cg.set_pids(10)
    cg.set_memory(64 * MB)
    cg.add(4242)
    joined = root / "cpu,cpuacct" / "minidocker" / "c1"
    assert _read(joined / "cpu.cfs_period_us") == "100000"
    assert _read(joined / "cpu.cfs_quota_us") == "25000"
    assert _read(joined / "cpu.shares") == "512"
    assert _read(root / "pids/minidocker/c1/pids.max") == "10"
    assert _read(root / "memory/minidocker/c1/memory.limit_in_bytes") == str(64 * MB)
    for tree in ("memory", "pids", "cpu,cpuacct"):
        assert _read(root / tree / "minidocker/c1/cgroup.procs") == "4242"


def test_v1_create_undoes_itself_when_one_tree_refuses(tmp_path):
    root = tmp_path / "cgroup"
    for tree in ("memory", "pids"):
        (root / tree).mkdir(parents=True)
    (root / "pids" / "minidocker").write_text("")  # a file where the pids tree needs a dir
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=str(root))
    with pytest.raises(CgroupError, match="cannot create cgroup .*pids/minidocker/c1"):
        cg.create()
    assert not os.path.exists(root / "memory" / "minidocker" / "c1")


def test_v1_memory_limit_keeps_memsw_at_least_the_ram_limit(tmp_path):
    root = tmp_path / "cgroup"
    leaf = root / "memory" / "minidocker" / "c1"
    leaf.mkdir(parents=True)
    unlimited = "9223372036854771712\n"
    (leaf / "memory.limit_in_bytes").write_text(unlimited)
    (leaf / "memory.memsw.limit_in_bytes").write_text(unlimited)
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=str(root))
    cg.set_memory(32 * MB)
    assert _read(leaf / "memory.limit_in_bytes") == _read(leaf / "memory.memsw.limit_in_bytes") == str(32 * MB)
    cg.set_memory(None)
    assert _read(leaf / "memory.limit_in_bytes") == _read(leaf / "memory.memsw.limit_in_bytes") == "-1"


def test_v1_and_v2_memory_swap_is_ram_plus_swap(tmp_path):
    """``--memory-swap`` (OCI ``memory.swap``) is RAM *plus* swap: v1's memsw file takes
    it as it is, v2 counts swap alone in ``memory.swap.max``; -1 leaves swap uncapped."""
    root = tmp_path / "cgroup"
    leaf = root / "memory" / "minidocker" / "c1"
    leaf.mkdir(parents=True)
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (leaf / name).write_text("9223372036854771712\n")
    cg = cgroups.open_cgroup("minidocker/c1", mountpoint=str(root))
    cg.set_memory(32 * MB, swap=64 * MB)
    assert (_read(leaf / "memory.limit_in_bytes"), _read(leaf / "memory.memsw.limit_in_bytes")) == \
        (str(32 * MB), str(64 * MB))
    cg.set_memory(16 * MB, swap=16 * MB)    # lowering: RAM first, then memsw (memsw >= RAM always)
    assert _read(leaf / "memory.memsw.limit_in_bytes") == str(16 * MB)
    cg.set_memory(16 * MB, swap=-1)
    assert _read(leaf / "memory.memsw.limit_in_bytes") == "-1"

    (tmp_path / "v2").mkdir()
    v2 = cgroups.open_cgroup("minidocker/c2", mountpoint=_fake_v2_root(tmp_path / "v2"))
    v2.create()
    swap_max = f"{v2.dirs()[0]}/memory.swap.max"
    with open(swap_max, "w") as f:
        f.write("max\n")
    v2.set_memory(32 * MB, swap=64 * MB)
    assert _read(swap_max) == str(32 * MB)
    v2.set_memory(32 * MB, swap=-1)
    assert _read(swap_max) == "max"


# --------------------------------------------------------------------------- the real kernel
@pytest.fixture
def real_cgroup():
    """A not-yet-created group ``minidocker/test-<random>`` in the machine's hierarchy;
    whatever the test leaves in it is killed and the group removed afterwards."""
    cg = cgroups.open_cgroup(f"minidocker/test-{uuid.uuid4().hex[:8]}")
    yield cg
    if cg.exists():
        cg.kill_all()
        cg.remove()


def _spawn_in(cg, args):
    """Start ``args`` already inside ``cg`` (it joins before exec, as the tool does)."""
    return subprocess.Popen(args, preexec_fn=lambda: cg.add(os.getpid()))


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_real_group_lifecycle(real_cgroup):
    cg = real_cgroup
    assert not cg.exists()
    cg.create()
    assert cg.exists() and all(os.path.isdir(d) for d in cg.dirs())
    cg.set_memory(64 * MB)
    cg.set_pids(50)
    cg.set_cpus(1)
    cg.set_cpu_shares(512)
    proc = _spawn_in(cg, ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    try:
        for _ in range(500):  # the shell forks its two sleeps
            if len(cg.pids()) == 3:
                break
            time.sleep(0.01)
        assert proc.pid in cg.pids() and len(cg.pids()) == 3
        stats = cg.stats()
        assert set(stats) == set(cgroups.STATS_KEYS)
        assert stats["memory_limit"] == 64 * MB and stats["pids_limit"] == 50
        assert stats["pids_current"] == 3
        assert isinstance(stats["memory_inactive_file"], int) and stats["memory_usage"] is not None
        # What `exec` does: find a container process's group, and it is the same one.
        found = cgroups.cgroup_of_pid(proc.pid)
        assert found.version == cg.version and found.dirs() == cg.dirs()
        cg.kill_all()
        assert cg.pids() == []
    finally:
        proc.kill()
    assert proc.wait() == -signal.SIGKILL
    cg.remove()
    assert not cg.exists()
    cg.remove()  # removing twice is harmless


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_real_kill_all_and_remove_reach_groups_nested_inside(real_cgroup):
    """A container may make groups of its own below its group (systemd does):
    killing and removing the container's group must take those along."""
    cg = real_cgroup
    inner = cgroups.open_cgroup(f"{cg.relpath}/inner")
    inner.create()
    proc = _spawn_in(inner, ["sleep", "60"])
    try:
        assert cg.pids() == [] and cg.pids(recursive=True) == [proc.pid]
        cg.kill_all()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        cg.remove()
        assert not inner.exists() and not cg.exists()
    finally:
        proc.kill()
        proc.wait()


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_real_remove_explains_a_group_that_still_has_processes(real_cgroup):
    cg = real_cgroup
    cg.create()
    proc = _spawn_in(cg, ["sleep", "60"])
    try:
        with pytest.raises(CgroupError, match=rf"cannot remove cgroup .*processes still in it: {proc.pid}"):
            cg.remove(timeout=0.1)
        assert cg.exists()
    finally:
        proc.kill()
        proc.wait()
    cg.remove()
    assert not cg.exists()


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_real_freeze_stops_the_group_until_thawed(real_cgroup):
    cg = real_cgroup
    cg.create()
    proc = _spawn_in(cg, ["sh", "-c", "while :; do :; done"])
    try:
        cg.freeze()
        assert cg.is_frozen()
        used = cg.stats()["cpu_usage_ns"]
        time.sleep(0.2)
        assert cg.stats()["cpu_usage_ns"] == used  # a frozen group runs nothing
        assert proc.poll() is None                 # ... and nothing was killed
        cg.thaw()
        assert not cg.is_frozen()
        for _ in range(500):
            if cg.stats()["cpu_usage_ns"] > used:
                break
            time.sleep(0.01)
        assert cg.stats()["cpu_usage_ns"] > used
    finally:
        cg.thaw()
        proc.kill()
        proc.wait()


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_real_cpu_quota_throttles(real_cgroup):
    cg = real_cgroup
    cg.create()
    cg.set_cpus(0.1)
    # A busy loop that stops itself after ~5 CPU-quota periods' worth of real time.
    proc = _spawn_in(cg, [sys.executable, "-c",
                          "import time\nt = time.monotonic() + 0.6\nwhile time.monotonic() < t: pass"])
    assert proc.wait(timeout=60) == 0
    stats = cg.stats()
    assert stats["cpu_throttled_periods"] > 0
    assert stats["cpu_throttled_ns"] > 0
    assert stats["cpu_usage_ns"] > 0


def _group_dirs(name):
    """Every directory the group minidocker/NAME could have, in a v1 or v2 hierarchy."""
    base = cgroups.DEFAULT_MOUNTPOINT
    tops = [base] + [os.path.join(base, d) for d in os.listdir(base)]
    return [d for d in (os.path.join(t, cgroups.PARENT, name) for t in tops) if os.path.isdir(d)]


def _tool(*args):
    """Run tools/cgroup under a fresh --name, and check it removed that group everywhere."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    result = run_tool("cgroup", "--name", name, *args, timeout=120)
    assert _group_dirs(name) == [], "tools/cgroup left its cgroup behind"
    assert f"removed cgroup minidocker/{name}" in result.stderr
    return result


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_tool_memory_limit_oom_kills_with_137():
    r = _tool("--memory", "32M", "sh", "-c", 'x=$(head -c 100M /dev/zero | tr "\\0" x)')
    assert r.returncode == 137, r.stderr
    assert "killed by the OOM killer (memory limit 32M)" in r.stderr
    assert "exit status 137" in r.stderr
    r = _tool("--memory", "32M", "tail", "/dev/zero")  # one process that only grows
    assert r.returncode == 137, r.stderr
    assert "tail was killed by signal 9 (SIGKILL): exit status 137" in r.stderr
    assert "killed by the OOM killer (memory limit 32M)" in r.stderr


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_tool_memory_limit_is_generous_enough_for_a_small_command():
    r = _tool("--memory", "32M", "sh", "-c", 'x=$(head -c 1M /dev/zero | tr "\\0" x); echo ${#x}')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1048576\n"
    assert "OOM" not in r.stderr


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_tool_pids_limit_makes_forks_fail():
    r = _tool("--pids", "5", "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; wait")
    assert r.returncode != 0
    assert re.search(r"(Cannot|can't) fork", r.stderr), r.stderr
    assert re.search(r"pids: limit 5 reached, fork failed \d+ times?", r.stderr), r.stderr
    # The sleeps it did start are killed with the group, as a container's are.
    assert re.search(r"killed [1-4] process\(es\) still in the cgroup", r.stderr), r.stderr


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_tool_cpu_limit_reports_throttling():
    r = _tool("--cpus", "0.1", sys.executable, "-c",
              "import time\nt = time.monotonic() + 0.6\nwhile time.monotonic() < t: pass")
    assert r.returncode == 0, r.stderr
    m = re.search(r"cpu: used [\d.]+s, throttled for ([\d.]+)s \(in (\d+) of (\d+) periods", r.stderr)
    assert m, r.stderr
    assert int(m.group(2)) > 0 and float(m.group(1)) > 0


@needs_root
@needs_cgroups
@pytest.mark.kernel
def test_tool_runs_the_command_inside_its_cgroup():
    r = _tool("cat", "/proc/self/cgroup")
    assert r.returncode == 0
    paths = cgroups.parse_proc_cgroup(r.stdout)
    key = "" if cgroups.detect_version() == 2 else "memory"
    assert paths[key].startswith("/minidocker/t-")
    assert "cat exited with status 0" in r.stderr


@needs_root
@needs_cgroups
def test_tool_exit_codes_and_errors():
    r = _tool("sh", "-c", "exit 3")
    assert r.returncode == 3 and "sh exited with status 3" in r.stderr
    r = _tool("/nonexistent/cmd")
    assert r.returncode == 127 and "cgroup: /nonexistent/cmd: command not found" in r.stderr
    r = run_tool("cgroup", "--no-such-flag")
    assert r.returncode == 125 and "cgroup: unrecognized arguments: --no-such-flag" in r.stderr

    r = run_tool("cgroup", "--memory", "12x", "true")
    assert r.returncode == 125 and r.stderr.strip() == "cgroup: invalid size: '12x' " \
        "(use a number with an optional unit b, k, m, g)"
    r = run_tool("cgroup", "--cpus", "1000", "true")
    assert r.returncode == 125 and "range of CPUs is from 0.01" in r.stderr
    r = run_tool("cgroup", "--name", "a/b", "true")
    assert r.returncode == 125 and "invalid cgroup name" in r.stderr


@needs_root
@needs_cgroups
def test_tool_refuses_a_name_in_use(real_cgroup):
    real_cgroup.create()
    name = real_cgroup.relpath.split("/", 1)[1]
    r = run_tool("cgroup", "--name", name, "true")
    assert r.returncode == 125
    assert r.stderr.strip() == f"cgroup: cgroup minidocker/{name} already exists"
    assert real_cgroup.exists()  # someone else's group is left as it was


@needs_root
@needs_cgroups
def test_tool_default_command_is_a_shell_in_the_group():
    r = run_tool("cgroup", input="cat /proc/$$/cgroup\n")
    assert r.returncode == 0, r.stderr
    assert "running /bin/sh in cgroup minidocker/tool-" in r.stderr
    key = "" if cgroups.detect_version() == 2 else "memory"
    assert cgroups.parse_proc_cgroup(r.stdout)[key].startswith("/minidocker/tool-")


@needs_root
@needs_cgroups
def test_tool_run_by_an_ordinary_user_says_it_needs_root():
    system_python = "/usr/bin/python3"
    if not os.path.exists(system_python) or not shutil.which("setpriv"):
        pytest.skip("needs /usr/bin/python3 and setpriv to run the tool as another user")
    # A world-readable copy: the checkout may live where uid 65534 cannot read it.
    base = tempfile.mkdtemp(prefix="cgtool-")
    try:
        os.chmod(base, 0o755)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for part in ("tools", "minidocker"):
            shutil.copytree(os.path.join(REPO, part), os.path.join(base, part), ignore=ignore)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            system_python, os.path.join(base, "tools", "cgroup"), "true"],
                           capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert r.returncode == 125
    assert r.stderr.startswith("cgroup: cannot ") and r.stderr.count("\n") == 1
    assert r.stderr.endswith("Permission denied (making a cgroup needs root)\n")


def test_tool_help_names_the_slide_and_what_to_try():
    r = run_tool("cgroup", "--help")
    assert r.returncode == 0
    assert 'Slide: "cgroups"' in r.stdout and "Try it:" in r.stdout
    for example in ("--memory 32M", "--pids 20", "--cpus 0.2"):
        assert example in r.stdout
