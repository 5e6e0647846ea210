"""The runtime: one container from an OCI bundle, checked by what it prints.

Each test writes Docker's default ``config.json`` around the busybox rootfs (an
overlay, so the shared rootfs is never written), runs it with
``runtime.create/start/wait`` and reads what the container printed, the way crun's
tests do.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time

import pytest

from conftest import needs_root
from helpers_runtime import (new_id, overlay_bundle, read_until_eio, run_bundle, run_in, sh,
                             write_bundle_spec)
from minidocker import runtime
from minidocker.errors import InvalidInput, MinidockerError
from minidocker.kernel import capabilities, cgroups

#: The machine's cgroup hierarchy: v1 on the CI host, v2 in the VM pass (tests/vm/run)
#: and on most learners' machines. The container sees the same limits either way, under
#: v2's names (one tree: memory.max, pids.max, cpu.max) or v1's (a tree per controller).
V2 = cgroups.detect_version() == 2
#: The line of /proc/self/cgroup that names the container's group (a hybrid v1 machine
#: also has an empty "0::" line).
OWN_GROUP_LINE = "^0::" if V2 else ":memory:"

pytestmark = needs_root

DOCKER_CAPS_MASK = 0xa80425fb


@pytest.fixture
def bundle(tmp_path, data_root):
    return str(tmp_path / "bundle")


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


# --------------------------------------------------------------------------- processes
def test_command_is_pid_1_with_its_own_hostname(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "echo $$; hostname", hostname="box1")
    assert r.code == 0, r
    assert r.out.split() == ["1", "box1"]
    assert os.uname().nodename != "box1"


def test_ps_shows_only_the_containers_processes(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "sleep 5 & ps -o pid,args; kill %1")
    assert r.code == 0, r
    rows = [line.split(None, 1) for line in r.out.strip().splitlines()[1:]]
    assert [pid for pid, _ in rows] == ["1", "2", "3"]
    assert rows[0][1].startswith("sh -c")


def test_host_pid_is_reported_and_namespaces_are_new(busybox_rootfs, bundle):
    cid = new_id()
    seen = {}

    def look(proc):
        for kind in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
            seen[kind] = os.readlink(f"/proc/{proc.pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
        with open(f"/proc/{proc.pid}/cgroup") as f:
            seen["cgroup path"] = f.read()

    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["true"], cid)
        r = run_bundle(bundle, cid, after_create=look)
    assert r.code == 0
    # the intermediate child unshared the namespaces; PID 1 is their first process
    assert all(seen[k] for k in ("mnt", "uts", "ipc", "net", "pid", "cgroup")), seen
    own = f"0::/minidocker/{cid}" if V2 else f"memory:/minidocker/{cid}"
    assert own in seen["cgroup path"]


def test_env_cwd_and_default_path(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, 'echo "$FOO|$PATH"; pwd', env=["FOO=bar baz"], cwd="/tmp")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "/tmp"]


def test_missing_working_dir_is_created(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["pwd"], cwd="/srv/app")
    assert (r.code, r.out) == (0, "/srv/app\n")


def test_user_and_groups_from_process_user(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["cat", "/proc/self/status"], uid=1000, gid=1001,
               additional_gids=[20, 30])
    assert r.code == 0, r
    fields = status_fields(r.out)
    assert fields["Uid"].split() == ["1000"] * 4
    assert fields["Gid"].split() == ["1001"] * 4
    assert fields["Groups"].split() == ["20", "30"]


def test_stdin_is_passed_through(busybox_rootfs, bundle):
    cid = new_id()
    with tempfile.TemporaryFile() as data, overlay_bundle(busybox_rootfs, bundle):
        data.write(b"hello from stdin\n")
        data.seek(0)
        write_bundle_spec(bundle, ["cat"], cid)
        r = run_bundle(bundle, cid, stdin=data.fileno())
    assert (r.code, r.out) == (0, "hello from stdin\n")


# --------------------------------------------------------------------------- exit codes
def test_exit_code_is_the_commands(busybox_rootfs, bundle):
    assert sh(busybox_rootfs, bundle, "exit 3").code == 3


def test_command_not_found_is_127_with_dockers_message(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["nosuchcommand"])
    assert r.code == 127
    assert r.proc.exec_error == 'exec: "nosuchcommand": executable file not found in $PATH'


def test_missing_absolute_path_is_127(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["/no/such/file"])
    assert r.code == 127
    assert "no such file or directory" in r.proc.exec_error


def test_not_executable_is_126(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["/etc/passwd"])
    assert r.code == 126
    assert r.proc.exec_error == 'exec: "/etc/passwd": permission denied'


def test_killed_by_signal_is_128_plus_n(busybox_rootfs, bundle):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["sleep", "60"], cid)
        proc = runtime.create(bundle, cid)
        try:
            runtime.start(proc)
            proc.kill(signal.SIGKILL)
            assert proc.wait() == 137
        finally:
            proc.cleanup()


def test_signal_with_a_handler_reaches_pid_1(busybox_rootfs, bundle):
    cid = new_id()
    r_fd, w_fd = os.pipe()
    with overlay_bundle(busybox_rootfs, bundle):
        # PID 1 ignores signals it has no handler for; with a trap, SIGTERM gets in.
        write_bundle_spec(bundle, ["sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo ready; "
                                   "while :; do sleep 0.1; done"], cid)
        proc = runtime.create(bundle, cid, stdout=w_fd)
        os.close(w_fd)
        try:
            runtime.start(proc)
            with os.fdopen(r_fd) as out:
                assert out.readline() == "ready\n"
                proc.kill(signal.SIGTERM)
                assert proc.wait() == 7
                assert out.readline() == "got TERM\n"
        finally:
            proc.cleanup()


# --------------------------------------------------------------------------- filesystem
def test_root_is_the_bundle_rootfs_and_host_is_gone(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "ls /; cat /proc/1/mountinfo | head -1; "
                                   "ls /tmp/rt-marker 2>&1; echo written > /root/file")
    assert r.code == 0, r
    assert "bin" in r.out.split() and "work" not in r.out.split()
    # the first mount is the overlay at /: nothing of the host's tree is left
    assert r.out.splitlines()[r.out.split().index("var") + 1].split()[4] == "/"
    assert not os.path.exists(os.path.join(busybox_rootfs, "root/file"))
    assert open(os.path.join(bundle, "upper/root/file")).read() == "written\n"


def test_proc_sys_and_sys_are_read_only(busybox_rootfs, bundle):
    cgroup_mount = "/sys/fs/cgroup" if V2 else "/sys/fs/cgroup/memory"
    pids_max = "/sys/fs/cgroup/pids.max" if V2 else "/sys/fs/cgroup/pids/pids.max"
    r = sh(busybox_rootfs, bundle,
           "echo 1 > /proc/sys/vm/drop_caches; echo rc=$?; "
           "echo x > /proc/sysrq-trigger; echo rc=$?; "
           "touch /sys/kernel/x; echo rc=$?; "
           f"echo 1 > {pids_max}; echo rc=$?; "
           f"grep -E ' /(proc/sys|sys|{cgroup_mount[1:]}|proc/bus) ' /proc/self/mountinfo")
    assert r.code == 0, r
    assert r.out.count("rc=1") == 4, r
    assert "Read-only file system" in r.err
    mounts = {line.split()[4]: line.split()[5] for line in r.out.splitlines() if line.count(" ") > 5}
    for point in ("/proc/sys", "/sys", cgroup_mount, "/proc/bus"):
        assert mounts[point].startswith("ro"), (point, mounts)


def test_sensitive_proc_files_are_masked(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle,
           "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do "
           "[ -e $f ] && echo $f $(wc -c < $f); done; ls /sys/firmware | wc -l")
    assert r.code == 0, r
    lines = r.out.splitlines()
    shown = {line.split()[0]: int(line.split()[1]) for line in lines[:-1]}
    assert "/proc/keys" in shown and "/proc/timer_list" in shown
    assert all(size == 0 for size in shown.values()), shown   # /dev/null over each
    assert lines[-1] == "0"                                    # an empty tmpfs
    with open("/proc/timer_list", "rb") as f:                  # the host's is not empty
        assert f.read(10)


def test_dev_has_only_the_standard_devices(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "ls /dev; echo x > /dev/null && echo null-ok; "
                                   "head -c 4 /dev/zero | wc -c; readlink /dev/ptmx")
    assert r.code == 0, r
    listing = set(r.out.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"} <= listing
    assert "sda" not in listing and "kmsg" not in listing and "mem" not in listing
    assert "null-ok" in r.out and "pts/ptmx" in r.out


def test_device_cgroup_allows_mknod_but_not_open(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle,
           "mknod /dev/sda b 8 0 && echo made; head -c 1 /dev/sda; echo rc=$?; "
           "mknod /dev/mem2 c 1 1 && echo made; head -c 1 /dev/mem2; echo rc=$?")
    assert r.code == 0, r
    assert r.out.count("made") == 2
    assert r.out.count("rc=1") == 2, r
    # v1: the devices cgroup refuses the open (EPERM). v2 has no devices controller
    # file; without an eBPF device program the runtime mounts /dev nodev, and the
    # kernel refuses to open any device node made there (EACCES).
    refusal = "Permission denied" if V2 else "Operation not permitted"
    assert r.err.count(refusal) == 2, r


def test_read_only_root(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "touch /x; echo rc=$?; touch /tmp/y; echo rc=$?",
           readonly_rootfs=True)
    assert r.out.split() == ["rc=1", "rc=1"]
    assert "Read-only file system" in r.err


def test_bind_mounts_from_the_spec(busybox_rootfs, bundle, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.9 friend\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("volume\n")
    binds = [{"destination": "/etc/hosts", "type": "bind", "source": str(hosts),
              "options": ["rbind", "rprivate"]},
             {"destination": "/data", "type": "bind", "source": str(data),
              "options": ["rbind", "rprivate", "ro"]}]
    r = sh(busybox_rootfs, bundle, "cat /etc/hosts /data/in.txt; touch /data/x; echo rc=$?",
           mounts=binds)
    assert r.out.splitlines() == ["127.0.0.1 localhost", "10.0.0.9 friend", "volume", "rc=1"]
    assert not (data / "x").exists()


# --------------------------------------------------------------------------- privileges
def test_capabilities_are_dockers_default_set(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["cat", "/proc/self/status"])
    fields = status_fields(r.out)
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(fields[key], 16) == DOCKER_CAPS_MASK, (key, fields[key])
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0
    assert capabilities.names_of(DOCKER_CAPS_MASK) == sorted(
        capabilities.DOCKER_DEFAULT_CAPS, key=capabilities.number_of)
    assert fields["NoNewPrivs"].strip() == "0"


def test_non_root_user_has_no_effective_capabilities(busybox_rootfs, bundle):
    r = run_in(busybox_rootfs, bundle, ["cat", "/proc/self/status"], uid=1000, gid=1000)
    fields = status_fields(r.out)
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert int(fields["CapBnd"], 16) == DOCKER_CAPS_MASK


def test_cap_drop_and_no_new_privileges(busybox_rootfs, bundle):
    caps = [c for c in capabilities.DOCKER_DEFAULT_CAPS if c not in ("CAP_CHOWN", "CAP_MKNOD")]
    r = sh(busybox_rootfs, bundle, "grep -E 'CapEff|NoNewPrivs' /proc/self/status; "
                                   "chown 1 /tmp; echo rc=$?; mknod /dev/x c 1 3; echo rc=$?",
           capabilities=caps, no_new_privileges=True)
    fields = status_fields(r.out)
    assert int(fields["CapEff"], 16) == DOCKER_CAPS_MASK & ~(1 << 0) & ~(1 << 27)
    assert fields["NoNewPrivs"].strip() == "1"
    assert r.out.count("rc=1") == 2


def test_sethostname_and_mount_are_refused(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "hostname other; echo rc=$?; mount -t tmpfs t /tmp; echo rc=$?; "
                                   "hostname")
    assert r.out.split()[0] == "rc=1" and r.out.split()[1] != "rc=0", r   # no CAP_SYS_ADMIN
    assert r.out.split()[2] != "other"
    assert "sethostname: Operation not permitted" in r.err
    assert "mount: permission denied" in r.err


# --------------------------------------------------------------------------- limits
def test_limits_are_visible_in_the_containers_cgroup(busybox_rootfs, bundle):
    if V2:
        script = ("cat /proc/self/cgroup; "
                  "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max")
    else:
        script = ("cat /proc/self/cgroup | grep -E ':(memory|pids):'; "
                  "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                  "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    r = sh(busybox_rootfs, bundle, script, memory=64 << 20, pids_limit=20, cpus=0.5)
    assert r.code == 0, r
    lines = r.out.splitlines()
    if V2:    # the cgroup namespace is rooted at the container's group
        assert lines == ["0::/", str(64 << 20), "20", "50000 100000"]
    else:
        assert all(line.endswith(":/") for line in lines[:2]), lines
        assert lines[2:] == [str(64 << 20), "20", "50000"]


def test_memory_limit_oom_kills_with_137(busybox_rootfs, bundle):
    # tail keeps the last lines in memory; /dev/zero has no newline: it grows forever.
    r = run_in(busybox_rootfs, bundle, ["tail", "/dev/zero"], memory=16 << 20)
    assert r.code == 137
    assert r.proc.oom_killed


def test_pids_limit_stops_forks(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "for i in 1 2 3 4 5 6; do sleep 30 & done; echo done",
           pids_limit=4)
    assert r.code != 0 and "done" not in r.out, r   # sh gives up when fork fails
    assert "can't fork: Resource temporarily unavailable" in r.err


def test_rlimits_are_applied_but_hard_limits_never_raised(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "ulimit -n; ulimit -Hn",
           rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}])
    assert r.out.split() == ["512", "1024"]
    with pytest.raises(MinidockerError, match="cannot raise the hard limit"):
        sh(busybox_rootfs, bundle + "2", "true",
           rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 1 << 30}])


# --------------------------------------------------------------------------- network ns
def test_network_namespace_is_empty_or_joined_by_path(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "ls /sys/class/net; cat /sys/class/net/lo/flags")
    names, flags = r.out.split()
    assert names == "lo"
    assert int(flags, 16) & 0x1, "lo is up in a new network namespace (as runc does it)"
    host_net = os.readlink("/proc/self/ns/net")
    no_net = [{"type": t} for t in ("mount", "uts", "pid", "ipc", "cgroup")]
    r = sh(busybox_rootfs, bundle + "-host", "readlink /proc/self/ns/net", namespaces=no_net)
    assert r.out.strip() == host_net
    # join the netns of another (running) container by path: --network container:X
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle + "-a"):
        write_bundle_spec(bundle + "-a", ["sleep", "60"], cid)
        first = runtime.create(bundle + "-a", cid)
        try:
            runtime.start(first)
            theirs = os.readlink(f"/proc/{first.pid}/ns/net")
            joined = no_net + [{"type": "network", "path": f"/proc/{first.pid}/ns/net"}]
            r = sh(busybox_rootfs, bundle + "-b", "readlink /proc/self/ns/net", namespaces=joined)
            assert r.out.strip() == theirs != host_net
        finally:
            first.kill()
            first.wait()
            first.cleanup()


# --------------------------------------------------------------------------- terminal
def test_terminal_gives_a_pty_from_the_containers_devpts(busybox_rootfs, bundle):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["sh", "-c", "tty; echo $TERM; stty size; "
                                   "ls /dev/pts; [ -t 0 ] && echo stdin-is-tty; "
                                   "stat -c '%t:%T' /dev/console"],
                          cid, terminal=True)
        proc = runtime.create(bundle, cid)
        try:
            assert proc.master_fd is not None
            from minidocker.runtime.pty import set_window_size
            import struct
            set_window_size(proc.master_fd, struct.pack("HHHH", 40, 100, 0, 0))
            runtime.start(proc)
            output = read_until_eio(proc.master_fd).decode().replace("\r\n", "\n")
            assert proc.wait() == 0
        finally:
            proc.cleanup()
    lines = output.splitlines()
    assert lines[:3] == ["/dev/pts/0", "xterm", "40 100"], output
    assert lines[3].split() == ["0", "ptmx"] and lines[4] == "stdin-is-tty"
    assert lines[5] == "88:0"   # /dev/console is the pty slave, char 136:0 (hex 88:0)


# --------------------------------------------------------------------------- exec
def test_exec_joins_namespaces_and_cgroup(busybox_rootfs, bundle):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["sh", "-c", "echo hi > /tmp/mark; sleep 60"], cid,
                          hostname="execbox")
        proc = runtime.create(bundle, cid)
        try:
            runtime.start(proc)
            with tempfile.TemporaryFile() as out:
                for _ in range(100):
                    handle = runtime.spawn_in(proc.pid, ["cat", "/tmp/mark"], stdio=(0, out.fileno(), 2))
                    if handle.wait() == 0:
                        break
                handle = runtime.spawn_in(
                    proc.pid, ["sh", "-c", "hostname; pidof sleep; "
                               f"grep {OWN_GROUP_LINE} /proc/self/cgroup; grep CapEff /proc/self/status; id -u"],
                    env=["PATH=/bin"], uid=0, stdio=(0, out.fileno(), 2))
                assert handle.wait() == 0
                missing = runtime.spawn_in(proc.pid, ["nope"], env=["PATH=/bin"],
                                           stdio=(0, out.fileno(), 2))
                assert missing.wait() == 127
                assert "executable file not found" in missing.exec_error
                out.seek(0)
                lines = out.read().decode().split("\n")
            assert lines[0] == "hi"
            own_group = "0::/" if V2 else "4:memory:/"    # its cgroup namespace's root
            assert lines[1:6] == ["execbox", "1", own_group, f"CapEff:\t{DOCKER_CAPS_MASK:016x}", "0"]
        finally:
            proc.kill()
            proc.wait()
            proc.cleanup()


# --------------------------------------------------------------------------- errors
def test_bad_bundle_is_a_clear_error(tmp_path, data_root):
    with pytest.raises(InvalidInput, match="no config.json"):
        runtime.create(str(tmp_path), new_id())
    os.makedirs(tmp_path / "rootfs")
    (tmp_path / "config.json").write_text('{"process": {"args": []}, "root": {"path": "rootfs"}}')
    with pytest.raises(InvalidInput, match="process.args"):
        runtime.create(str(tmp_path), new_id())


def test_failed_setup_leaves_nothing_behind(busybox_rootfs, bundle, tmp_path):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["true"], cid, mounts=[
            {"destination": "/x", "type": "bind", "source": str(tmp_path / "missing"),
             "options": ["rbind"]}])
        with pytest.raises(MinidockerError, match="bind mount source .* does not exist"):
            runtime.create(bundle, cid)
    leftovers = [d for d in os.listdir("/sys/fs/cgroup")
                 if os.path.isdir(f"/sys/fs/cgroup/{d}/minidocker/{cid}")]
    assert leftovers == []


# --------------------------------------------------------------------------- more spec
def test_sysctl_and_oom_score_adj(busybox_rootfs, bundle):
    host_value = open("/proc/sys/net/ipv4/ip_forward").read()
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        spec = write_bundle_spec(bundle, ["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward "
                                          "/proc/self/oom_score_adj"], cid, oom_score_adj=500)
        # net.* sysctls belong to the network namespace: this one is the container's own
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1" if host_value.strip() == "0" else "0"}
        from minidocker.runtime.spec import write_spec
        write_spec(bundle, spec)
        r = run_bundle(bundle, cid)
    assert r.code == 0, r
    assert r.out.split() == [spec["linux"]["sysctl"]["net.ipv4.ip_forward"], "500"]
    assert open("/proc/sys/net/ipv4/ip_forward").read() == host_value   # host unchanged


def test_mount_targets_cannot_escape_the_rootfs_through_symlinks(tmp_path):
    from minidocker.runtime.rootfs_setup import path_in_root
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "escape").symlink_to("/../../..")
    (root / "rel").symlink_to("../../../etc")
    (root / "etc/link").symlink_to("/etc")
    assert path_in_root(str(root), "/escape/hosts") == str(root / "hosts")
    assert path_in_root(str(root), "/rel/x") == str(root / "etc/x")
    assert path_in_root(str(root), "/etc/link/passwd") == str(root / "etc/passwd")
    assert path_in_root(str(root), "/../../proc") == str(root / "proc")


def test_errors_are_one_clear_line(busybox_rootfs, bundle):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["true"], cid, cgroups_path="/system.slice/x")
        with pytest.raises(InvalidInput, match=r"cgroupsPath 'system.slice/x': must be below /minidocker/"):
            runtime.create(bundle, cid)
        write_bundle_spec(bundle, ["true"], cid, cwd="/etc/passwd/sub")
        with pytest.raises(MinidockerError) as info:
            runtime.create(bundle, cid)
    message = str(info.value)
    assert message.startswith("container setup failed: ") and "\n" not in message
    assert "[Errno" not in message and "/etc/passwd/sub" in message


def test_exec_process_codes_terminal_and_detach(busybox_rootfs, bundle, tmp_path):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        write_bundle_spec(bundle, ["sleep", "60"], cid, env=["FROM_IMAGE=yes"],
                          no_new_privileges=True)
        proc = runtime.create(bundle, cid)
        try:
            runtime.start(proc)
            with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
                stdio = (null.fileno(), out.fileno(), out.fileno())
                # the container's own environment and no_new_privs, unless told otherwise
                code = runtime.exec_process(proc.pid, ["sh", "-c", "echo $FROM_IMAGE; "
                                            "grep NoNewPrivs /proc/self/status; exit 6"], stdio=stdio)
                assert code == 6
                code = runtime.exec_process(proc.pid, ["sh", "-c", "id -u; id -G; pwd"],
                                            env=["PATH=/bin"], uid=1000, gid=1000,
                                            additional_gids=[5], cwd="/tmp", stdio=stdio)
                assert code == 0
                assert runtime.exec_process(proc.pid, ["touch", "/tmp/detached"], detach=True,
                                            stdio=stdio) == 0
                out.seek(0)
                assert out.read().decode().split("\n")[:5] == ["yes", "NoNewPrivs:\t1", "1000",
                                                              "1000 5", "/tmp"]
            # a terminal: the exec gets the next pty of the container's devpts
            handle = runtime.spawn_in(proc.pid, ["sh", "-c", "tty"], terminal=True)
            try:
                output = read_until_eio(handle.master_fd).decode()
                assert handle.wait() == 0
            finally:
                handle.cleanup()
            assert output.strip() == "/dev/pts/0"
            for _ in range(200):   # the detached touch runs on its own
                if os.path.exists(os.path.join(bundle, "upper/tmp/detached")):
                    break
                time.sleep(0.02)
            assert os.path.exists(os.path.join(bundle, "upper/tmp/detached"))
        finally:
            proc.kill()
            proc.wait()
            proc.cleanup()


def test_privileged_keeps_every_capability_the_host_has(busybox_rootfs, bundle):
    r = sh(busybox_rootfs, bundle, "grep CapEff /proc/self/status; mount -t tmpfs t /tmp && echo mounted; "
                                   "wc -c < /proc/timer_list; grep ' /sys ' /proc/self/mountinfo",
           privileged=True)
    assert r.code == 0, r
    fields = status_fields(r.out)
    assert int(fields["CapEff"], 16) == capabilities.bounding_set()   # all the host allows
    lines = r.out.splitlines()
    assert "mounted" in lines and int(lines[2]) > 0                    # nothing masked
    assert lines[3].split()[5].startswith("rw")                        # /sys writable


def test_without_a_devices_cgroup_dev_is_nodev(busybox_rootfs, bundle):
    """The cgroup v2 fallback (forced here by annotation): mknod'ed nodes cannot be
    opened because /dev is nodev; the standard devices are bind mounts of the host's."""
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        spec = write_bundle_spec(bundle, ["sh", "-c",
                                          "mknod /dev/sda b 8 0 && head -c 1 /dev/sda; echo rc=$?; "
                                          "echo x > /dev/null && head -c 3 /dev/zero | wc -c; "
                                          "stat -c '%t:%T' /dev/null; "
                                          "grep -E ' /dev (rw|ro),' /proc/self/mountinfo"], cid)
        spec["annotations"] = {"org.minidocker.dev-mode": "nodev"}
        from minidocker.runtime.spec import write_spec
        write_spec(bundle, spec)
        r = run_bundle(bundle, cid)
    lines = r.out.splitlines()
    assert lines[:3] == ["rc=1", "3", "1:3"], r
    assert "nodev" in lines[3].split()[5]
    assert "/dev/sda: Permission denied" in r.err


def test_without_a_cgroup_namespace_the_own_groups_are_bound(busybox_rootfs, bundle):
    no_cgroupns = [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")]
    limit_file = "/sys/fs/cgroup/memory.max" if V2 else "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    r = sh(busybox_rootfs, bundle, f"grep {OWN_GROUP_LINE} /proc/self/cgroup; cat {limit_file}",
           namespaces=no_cgroupns, memory=32 << 20)
    assert r.code == 0, r
    path, limit = r.out.split()
    line = r"0::" if V2 else r"\d+:memory:"
    assert re.fullmatch(line + r"/minidocker/[0-9a-f]{64}", path)   # the host's view
    assert limit == str(32 << 20)   # /sys/fs/cgroup(/memory) is the container's own group


def test_relay_terminal_copies_input_and_output(busybox_rootfs, bundle, tmp_path):
    """relay_terminal with a pipe as our stdin: the bytes reach the container's pty, and
    the end of our input becomes the terminal's EOF character (Ctrl-D)."""
    cid = new_id()
    stdin_r, stdin_w = os.pipe()
    os.write(stdin_w, b"hello pty\n")
    os.close(stdin_w)
    with overlay_bundle(busybox_rootfs, bundle), tempfile.TemporaryFile() as out:
        write_bundle_spec(bundle, ["sh", "-c", "read line; echo \"got: $line\"; cat; echo end"],
                          cid, terminal=True)
        proc = runtime.create(bundle, cid)
        try:
            runtime.start(proc)
            runtime.relay_terminal(proc.master_fd, stdin_fd=stdin_r, stdout_fd=out.fileno())
            assert proc.wait() == 0
        finally:
            proc.cleanup()
            os.close(stdin_r)
        out.seek(0)
        text = out.read().decode().replace("\r\n", "\n")
    assert "got: hello pty\n" in text and text.endswith("end\n")


# --------------------------------------------------------------------------- seccomp
def test_seccomp_filter_refuses_new_namespaces_and_mounts(busybox_rootfs, bundle):
    script = ("grep Seccomp: /proc/self/status; unshare -U true; echo rc=$?; "
              "unshare -n true; echo rc=$?; echo still-works")
    r = sh(busybox_rootfs, bundle, script, seccomp=True)
    assert r.code == 0, r
    assert r.out.split() == ["Seccomp:", "2", "rc=1", "rc=1", "still-works"]
    assert r.err.count("Operation not permitted") == 2
    # without the filter, root with Docker's capabilities can still make a user namespace
    r = sh(busybox_rootfs, bundle + "-2", "grep Seccomp: /proc/self/status; unshare -U true; echo rc=$?")
    assert r.out.split() == ["Seccomp:", "0", "rc=0"]


def test_seccomp_profile_compiles_to_bpf():
    from minidocker.runtime import seccomp
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["unshare", "mount"], "action": "SCMP_ACT_ERRNO"},
                            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                            {"names": ["nosuchcall"], "action": "SCMP_ACT_KILL"}]}
    program = seccomp.compile_filter(profile, "x86_64")
    assert program[:2] == [(0x20, 0, 0, 4), (0x15, 1, 0, 0xC000003E)]   # check the arch
    assert (0x15, 0, 1, 272) in program and (0x15, 0, 1, 165) in program  # unshare, mount
    assert (0x06, 0, 0, 0x00050000 | 1) in program                       # ERRNO(EPERM)
    assert (0x06, 0, 0, 0x00050000 | 38) in program                      # ERRNO(ENOSYS)
    assert (0x06, 0, 0, 0x7fff0000) in program                           # default: allow
    # a name no ABI has is skipped, as libseccomp (and so runc) skips it; x86 and x32
    # get sections of their own, with their own numbers, only when the profile lists them
    assert not any(insn[3] == 0x40000003 for insn in program)
    listed = seccomp.compile_filter({**profile, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                                  "SCMP_ARCH_X32"]}, "x86_64")
    assert (0x15, 0, 1, 0x40000003) in listed                             # i386's AUDIT_ARCH
    assert (0x15, 0, 1, 21) in listed and (0x15, 0, 1, 0x400000a5) in listed  # mount: i386, x32
    arm = seccomp.compile_filter(profile, "aarch64")
    assert arm[1] == (0x15, 1, 0, 0xC00000B7) and (0x15, 0, 1, 40) in arm  # mount is 40 there


@pytest.mark.parametrize("section, message", [
    ({"syscalls": []}, "defaultAction: missing"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "defaultAction: SCMP_ACT_NOTIFY needs a seccomp agent"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]},
     r"syscalls\[0\].action: missing"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "errnoRet": 70000}]},
     r"syscalls\[0\].errnoRet: 70000 is not an errno"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     r"syscalls\[0\].args\[0\].value: -1 is not an unsigned 64-bit number"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     r'flags\[0\]: unknown flag "SECCOMP_FILTER_FLAG_FAST"'),
])
def test_seccomp_section_errors_name_the_field(section, message):
    from minidocker.runtime import seccomp
    with pytest.raises(seccomp.ProfileError, match=message):
        seccomp.compile_filter(section, "x86_64")


#: arguments that straddle the 32-bit words: the comparisons are 64-bit, unsigned
ARG_SAMPLES = [0, 1, 7, 8, 9, 0xFFFFFFFF, 1 << 32, (1 << 32) + 8, (5 << 32) + 3, (1 << 64) - 1]


@pytest.mark.parametrize("op, value, two, holds", [
    ("SCMP_CMP_EQ", (1 << 32) + 8, 0, lambda a: a == (1 << 32) + 8),
    ("SCMP_CMP_NE", 8, 0, lambda a: a != 8),
    ("SCMP_CMP_GT", (1 << 32), 0, lambda a: a > (1 << 32)),
    ("SCMP_CMP_GE", 8, 0, lambda a: a >= 8),
    ("SCMP_CMP_LT", (1 << 32) + 8, 0, lambda a: a < (1 << 32) + 8),
    ("SCMP_CMP_LE", 8, 0, lambda a: a <= 8),
    ("SCMP_CMP_MASKED_EQ", (1 << 32) | 0xF, (1 << 32) | 8,
     lambda a: a & ((1 << 32) | 0xF) == (1 << 32) | 8),
])
def test_seccomp_argument_conditions_as_the_kernel_runs_them(op, value, two, holds):
    """The filter runs in the kernel: getppid(2) ignores its arguments, but the filter
    sees them, so a rule on argument 3 decides, per value, whether the call fails
    (errno 42) or returns the parent's pid."""
    import ctypes
    from minidocker.runtime import seccomp
    machine = os.uname().machine
    if machine not in seccomp.NATIVE:
        pytest.skip(f"no system call table for {machine}")
    nr = seccomp.TABLES[seccomp.NATIVE[machine][0]]["getppid"]
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42,
                             "args": [{"index": 3, "value": value, "valueTwo": two, "op": op}]}]}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            seccomp.install(profile)
            libc = ctypes.CDLL(None, use_errno=True)
            results = []
            for a in ARG_SAMPLES:
                ret = libc.syscall(ctypes.c_long(nr), ctypes.c_ulong(0), ctypes.c_ulong(0),
                                   ctypes.c_ulong(0), ctypes.c_ulong(a))
                results.append("denied" if ret == -1 and ctypes.get_errno() == 42 else "allowed")
            os.write(write_end, " ".join(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        got = f.read().split()
    os.waitpid(pid, 0)
    assert got == ["denied" if holds(a) else "allowed" for a in ARG_SAMPLES]


def test_exec_gets_the_seccomp_profile_it_is_given(busybox_rootfs, bundle):
    cid = new_id()
    with overlay_bundle(busybox_rootfs, bundle):
        spec = write_bundle_spec(bundle, ["sleep", "60"], cid, seccomp=True)
        proc = runtime.create(bundle, cid)
        try:
            runtime.start(proc)
            with tempfile.TemporaryFile() as out:
                code = runtime.exec_process(proc.pid, ["sh", "-c", "unshare -U true"],
                                            stdio=(0, out.fileno(), out.fileno()),
                                            seccomp_profile=spec["linux"]["seccomp"])
                assert code == 1
                out.seek(0)
                assert b"Operation not permitted" in out.read()
        finally:
            proc.kill()
            proc.wait()
            proc.cleanup()


def test_seccomp_gives_calls_back_with_their_capability(busybox_rootfs, bundle):
    caps = capabilities.DOCKER_DEFAULT_CAPS + ["CAP_SYS_ADMIN"]   # --cap-add SYS_ADMIN
    r = sh(busybox_rootfs, bundle, "mount -t tmpfs t /tmp && echo mounted; "
                                   "grep Seccomp: /proc/self/status", seccomp=True, capabilities=caps)
    assert r.out.split() == ["mounted", "Seccomp:", "2"], r


# --------------------------------------------------------------------------- runc-like CLI
def test_python_m_runtime_spec_and_run(busybox_rootfs, bundle):
    import subprocess
    import sys
    cli = [sys.executable, "-m", "minidocker.runtime"]
    with overlay_bundle(busybox_rootfs, bundle):
        r = subprocess.run(cli + ["spec", "--bundle", bundle, "--", "sh", "-c", "echo $$; hostname"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == os.path.join(bundle, "config.json")
        r = subprocess.run(cli + ["run", "--bundle", bundle, new_id()], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        assert (r.returncode, r.stdout) == (0, "1\nminidocker\n"), r.stderr
        r = subprocess.run(cli + ["run", "--bundle", bundle + "-missing", "x"], capture_output=True,
                           text=True)
        assert r.returncode == 125
        assert "no config.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1
