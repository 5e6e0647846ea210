"""``minidocker run``: what a container sees and what the user gets back (issue 3)."""

from __future__ import annotations

import json
import os
import re

import pytest

from helpers_engine import md  # noqa: F401  (fixture)

pytestmark = [pytest.mark.root]


def test_slide_pid1_and_short_id_hostname(md):
    r = md("run", "--rm", "busybox", "sh", "-c", "echo $$; hostname")
    assert r.returncode == 0, r.stderr
    pid, hostname = r.stdout.split()
    assert pid == "1"
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)
    assert md.out("ps", "-aq") == ""  # --rm left nothing


def test_ps_inside_shows_only_the_container(md):
    out = md.out("run", "--rm", "busybox", "ps", "-o", "pid,comm")
    lines = out.split("\n")[1:]
    assert [l.split() for l in lines if l.strip()] == [["1", "ps"]]


def test_exit_codes_follow_docker(md):
    assert md("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    r = md("run", "--rm", "busybox", "no-such-command")
    assert r.returncode == 127
    assert "no-such-command" in r.stderr
    r = md("run", "--rm", "busybox", "/etc/passwd")
    assert r.returncode == 126
    r = md("run", "--rm", "--pull", "never", "nosuchimage")  # never a pull from the internet
    assert r.returncode == 125
    assert "Unable to find image 'nosuchimage:latest' locally" in r.stderr
    assert md("run", "--rm", "--bogus-flag", "busybox").returncode == 125
    assert md.out("ps", "-aq") == ""


def test_env_workdir_user_entrypoint(md, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n")
    out = md.out("run", "--rm", "-e", "A=1", "-e", "PATH=/bin:/sbin", "--env-file", env_file,
                 "-w", "/tmp", "-u", "nobody", "busybox", "sh", "-c",
                 'echo "$A $FROM_FILE $PATH $HOME"; pwd; id -u; id -g')
    assert out.split("\n")[:4] == ["1 yes /bin:/sbin /nonexistent", "/tmp", "65534", "65534"]
    out = md.out("run", "--rm", "--entrypoint", "echo", "busybox", "hello", "world")
    assert out == "hello world\n"
    out = md.out("run", "--rm", "--hostname", "mycontainer", "busybox", "hostname")
    assert out == "mycontainer\n"


def test_stdin_with_i(md):
    out = md.out("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="hello\n")
    assert out == "HELLO\n"
    # without -i the container's stdin is empty
    assert md.out("run", "--rm", "busybox", "cat", input="ignored\n") == ""


def test_filesystems_and_hardening(md):
    script = ("cat /etc/hostname >/dev/null && ls /dev | tr '\\n' ' ' && echo && "
              "grep CapEff /proc/self/status && "
              "(echo x > /proc/sys/kernel/hostname 2>/dev/null && echo sys-writable || echo sys-ro) && "
              "(wc -c < /proc/timer_list) && "
              "(touch /sys/x 2>/dev/null && echo sysfs-rw || echo sysfs-ro) && "
              "(mknod /tmp/sda b 8 0 && (head -c1 /tmp/sda >/dev/null 2>&1 && echo dev-open || echo dev-denied))")
    out = md.out("run", "--rm", "busybox", "sh", "-c", script)
    devs, capeff, sys_ro, kcore, sysfs, dev = out.strip().split("\n")
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm"):
        assert name in devs.split()
    # Docker's default capability set: 0x00000000a80425fb
    assert capeff.split()[1] == "00000000a80425fb"
    assert sys_ro == "sys-ro"
    assert kcore.strip() == "0"  # masked: /proc/timer_list reads as /dev/null
    assert sysfs == "sysfs-ro"
    assert dev == "dev-denied"


def test_cap_drop_and_no_new_privileges(md):
    out = md.out("run", "--rm", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                 "busybox", "grep", "-E", "CapEff|NoNewPrivs", "/proc/self/status")
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out


def test_seccomp_filter_by_default_as_in_docker(md):
    """Docker runs every container under a system call filter (Seccomp: 2, "filter");
    ``seccomp=unconfined`` and ``--privileged`` run without one. A capability gives its
    calls back: with --cap-add SYS_ADMIN, mount(2) works."""
    status = "grep Seccomp: /proc/self/status"
    assert md.out("run", "--rm", "--network", "none", "busybox", "sh", "-c", status) == "Seccomp:\t2\n"
    for opts in (["--security-opt", "seccomp=unconfined"], ["--privileged"]):
        out = md.out("run", "--rm", "--network", "none", *opts, "busybox", "sh", "-c", status)
        assert out == "Seccomp:\t0\n", opts
    out = md.out("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", "busybox",
                 "sh", "-c", "mount -t tmpfs t /tmp && grep ' /tmp ' /proc/mounts")
    assert out.startswith("t /tmp tmpfs ")
    for bad, message in ((["--security-opt", "apparmor=x"], 'invalid --security-opt: "apparmor=x"'),
                         (["--security-opt", "seccomp=/no/p.json"],
                          "opening seccomp profile (/no/p.json) failed: open /no/p.json: "
                          "no such file or directory")):
        r = md("run", "--rm", "--network", "none", *bad, "busybox", "true")
        assert r.returncode == 125 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert md.out("ps", "-aq") == ""       # refused before any record was made


#: Docker's profile format: archMap (this machine's entry picked), a rule by name, rules
#: by argument (chmod's mode is argument 1, fchmodat's argument 2: the set-uid bit
#: 04000 = 2048, masked), and a rule that a capability excludes.
DENY_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                 "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["chmod", "fchmod"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 2048, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 2048, "valueTwo": 2048, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["no_such_call"], "action": "SCMP_ACT_KILL"},
    ],
}
PROBE_SECCOMP = ("mkdir /made; echo mkdir=$?; touch /f; chmod 755 /f; echo chmod755=$?; "
                 "chmod 4755 /f; echo chmod4755=$?; stat -c %a /f; hostname other; echo hostname=$?")


def test_seccomp_profile_file_as_docker_reads_it(md, tmp_path):
    """``--security-opt seccomp=FILE``: the container sees the calls the profile denies
    fail with the profile's errno, by name and by argument; the profile is kept in the
    record (the file may change afterwards); runc, compiling the same ``linux.seccomp``
    with libseccomp, gives the same answers."""
    import shutil
    path = tmp_path / "deny.json"
    path.write_text(json.dumps(DENY_PROFILE, indent=2))
    run = ("run", "--rm", "--network", "none", "--security-opt", f"seccomp={path}", "busybox")
    r = md(*run, "sh", "-c", PROBE_SECCOMP)
    assert r.stdout.split() == ["mkdir=1", "chmod755=0", "chmod4755=1", "755", "hostname=1"], r.stderr
    assert "can't create directory '/made': Operation not permitted" in r.stderr
    assert "chmod: /f: Operation not permitted" in r.stderr
    assert "sethostname: Function not implemented" in r.stderr      # errnoRet 38
    out = md.out(*run[:-1], "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "hostname other; echo $?")
    assert out == "0\n"                                              # excluded by the capability
    cid = md.out("create", "--security-opt", f"seccomp={path}", "busybox", "true").strip()
    path.write_text("{}")
    kept = json.loads(md.out("inspect", cid))[0]["HostConfig"]["SecurityOpt"]
    assert kept == ["seccomp=" + json.dumps(DENY_PROFILE, separators=(",", ":"))]
    md.out("rm", cid)
    if shutil.which("runc"):
        path.write_text(json.dumps(DENY_PROFILE))
        theirs = md(*run[:-1], "--runtime", "runc", "busybox", "sh", "-c", PROBE_SECCOMP)
        assert (theirs.stdout, theirs.stderr) == (r.stdout, r.stderr)


@pytest.mark.parametrize("text, message", [
    ('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [\n'
     '    {"names": ["mkdir"] "action": 1}\n]}',
     "not JSON: line 4 column 25: Expecting ',' delimiter"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}',
     'syscalls[0].action: unknown action "SCMP_ACT_NOPE"'),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', 'defaultAction: unknown action "SCMP_ACT_NOPE"'),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",'
     ' "args": [{"index": 1, "value": 8, "op": "SCMP_CMP_ABOUT"}]}]}',
     'syscalls[0].args[0].op: unknown operator "SCMP_CMP_ABOUT"'),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",'
     ' "args": [{"index": 6, "value": 8, "op": "SCMP_CMP_EQ"}]}]}',
     "syscalls[0].args[0].index: 6 is not an argument index (0 to 5)"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]}',
     "syscalls[0].names[0]: empty string is not a valid syscall"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscall": []}', "syscall: unknown field"),
    ('{"defaultAction": "SCMP_ACT_ALLOW",'
     ' "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_LOG"}]}',
     "syscalls[0]: 'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],'
     ' "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}',
     "'architectures' and 'archMap' were specified in the seccomp profile, use either "
     "'architectures' or 'archMap'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}',
     'architectures[0]: unknown architecture "SCMP_ARCH_Z80"'),
])
def test_bad_seccomp_profile_is_refused_at_create(md, tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    before = md.out("ps", "-aq")
    r = md("create", "--security-opt", f"seccomp={path}", "busybox", "true")
    assert r.returncode == 125 and r.stdout == ""
    assert r.stderr.startswith(f"minidocker: seccomp profile {path}: {message}"), r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert md.out("ps", "-aq") == before


def test_exec_gets_the_containers_restrictions(md):
    """``docker exec`` starts a process with the container's capabilities,
    no_new_privs and system call filter, not the engine's own."""
    md.out("run", "-d", "--name", "restricted", "--network", "none", "--cap-drop", "NET_RAW",
           "--security-opt", "no-new-privileges", "busybox", "sleep", "30")
    try:
        out = md.out("exec", "restricted", "grep", "-E", "^(CapEff|NoNewPrivs|Seccomp):",
                     "/proc/self/status")
        assert out.split("\n")[:3] == [f"CapEff:\t{0xa80425fb & ~(1 << 13):016x}",
                                       "NoNewPrivs:\t1", "Seccomp:\t2"]
    finally:
        md("rm", "-f", "restricted")


def test_network_none_has_only_lo_up(md):
    out = md.out("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    links = [l.split(":")[1].strip() for l in out.strip().split("\n")]
    assert links == ["lo"]
    assert "UP" in out


def test_memory_limit_oom_kill_is_137(md):
    r = md("run", "--name", "oomer", "-m", "16m", "busybox", "sh", "-c",
           "x=$(head -c 200m /dev/zero | tr '\\0' x); echo survived")
    assert r.returncode == 137
    assert "survived" not in r.stdout
    assert md.out("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "oomer").strip() == "true 137"
    md.out("rm", "oomer")


def test_pids_and_cpus_limits_are_applied(md):
    r = md("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
           "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; echo forks-limited")
    assert "can't fork" in r.stderr.lower() or "resource temporarily unavailable" in r.stderr.lower()
    out = md.out("run", "--rm", "--cpus", "0.5", "busybox", "sh", "-c",
                 "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert out.split()[0] == "50000"


def test_out_of_range_limits_are_refused_at_create_with_dockers_messages(md):
    """What ``verifyPlatformContainerResources`` refuses, refused the same way: one line,
    exit 125, and no container record left behind (by ``run`` or ``create``)."""
    ncpu = os.cpu_count()
    cpus = f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
    cases = [
        (["--cpus", "-1"], cpus),
        (["--cpus", "0.001"], cpus),          # a 100 µs quota: under the kernel's 1 ms floor
        (["--cpus", str(ncpu + 1)], cpus),
        (["-m", "4m"], "Minimum memory limit allowed is 6MB"),
        (["-m", "32m", "--memory-swap", "16m"],
         "Minimum memoryswap limit should be larger than memory limit, see usage"),
        (["--memory-swap", "64m"],
         "You should always set the Memory limit when using Memoryswap limit, see usage"),
        (["--cpu-shares", "-5"], "shares: invalid argument"),
    ]
    before = md.out("ps", "-aq")
    for flags, message in cases:
        for verb in ("run", "create"):
            r = md(verb, "--network", "none", *flags, "busybox", "true")
            assert (r.returncode, r.stderr) == (125, f"minidocker: {message}\n"), (flags, r.stderr)
    assert md.out("ps", "-aq") == before


def _cgroup_file(md, flags, v1_file, v2_file):
    """One cgroup file of a container run with ``flags``, read from inside it."""
    return md.out("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c",
                  f"cat /sys/fs/cgroup/{v2_file} 2>/dev/null || cat /sys/fs/cgroup/{v1_file}").strip()


def test_limits_at_the_edges_docker_accepts_are_applied(md):
    """The other side of each edge: 0.01 CPUs, 6 MB, ``--pids-limit`` 0 or -1 (unlimited
    since API 1.41, stored as no limit at all), swap allowed up to --memory-swap,
    and --cpu-shares as the scheduler takes it (1 is raised to its floor of 2)."""
    assert _cgroup_file(md, ["--cpus", "0.01"], "cpu/cpu.cfs_quota_us", "cpu.max").split()[0] == "1000"
    assert _cgroup_file(md, ["-m", "6m"], "memory/memory.limit_in_bytes", "memory.max") == str(6 << 20)
    for unlimited in ("0", "-1"):
        assert _cgroup_file(md, ["--pids-limit", unlimited], "pids/pids.max", "pids.max") == "max"
        cid = md.out("create", "--pids-limit", unlimited, "busybox", "true").strip()
        assert json.loads(md.out("inspect", cid))[0]["HostConfig"]["PidsLimit"] is None
        md.out("rm", cid)
    assert _cgroup_file(md, ["-c", "512"], "cpu/cpu.shares", "cpu.weight") in ("512", "20")
    assert _cgroup_file(md, ["-c", "1"], "cpu/cpu.shares", "cpu.weight") in ("2", "1")
    swap = _cgroup_file(md, ["-m", "32m", "--memory-swap", "64m"],
                        "memory/memory.memsw.limit_in_bytes", "memory.swap.max")
    assert swap in (str(64 << 20), str(32 << 20))   # v1 memsw = RAM + swap; v2 swap alone
    unlimited = _cgroup_file(md, ["-m", "32m", "--memory-swap", "-1"],
                             "memory/memory.memsw.limit_in_bytes", "memory.swap.max")
    assert unlimited == "max" or int(unlimited) > 1 << 60
    no_swap = _cgroup_file(md, ["-m", "32m"], "memory/memory.memsw.limit_in_bytes", "memory.swap.max")
    assert no_swap in (str(32 << 20), "0")


def test_detached_lifecycle(md):
    cid = md.out("run", "-d", "--name", "sleeper", "busybox", "sh", "-c",
                 "echo started; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    ps = md.out("ps")
    assert "sleeper" in ps and "Up " in ps
    assert md.out("ps", "-q") == cid[:12] + "\n"
    # names and id prefixes resolve; exec joins the container
    assert md.out("exec", "sleeper", "hostname") == cid[:12] + "\n"
    assert md.out("exec", cid[:5], "sh", "-c", "echo $$") != "1\n"
    top = md.out("top", "sleeper").split("\n")
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top[1].split()[0] == "root" and "sleep" in "\n".join(top)
    assert md.out("ps", "--format", "{{.Names}}\\t{{.State}}") == "sleeper\trunning\n"
    table = md.out("ps", "--format", "table {{.ID}}\\t{{.Names}}").split("\n")
    assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and table[1].split() == [cid[:12], "sleeper"]
    md.out("stop", "-t", "5", "sleeper")
    assert md.out("wait", "sleeper") == "7\n"
    assert md.out("logs", "sleeper") == "started\nbye\n"
    assert "Exited (7)" in md.out("ps", "-a")
    assert md("rm", "sleeper").returncode == 0
    assert md("logs", "sleeper").returncode != 0


def _rootfs_mount_line(cid: str) -> str:
    with open("/proc/self/mountinfo") as f:
        return next(line for line in f if line.split()[4].endswith(f"/{cid}/bundle/rootfs"))


@pytest.mark.skipif(tuple(map(int, re.findall(r"\d+", os.uname().release)[:2])) < (5, 10),
                    reason="overlayfs 'volatile' needs Linux 5.10")
def test_rm_containers_layer_is_mounted_volatile(md):
    """``--rm`` throws the container's layer away at exit, so overlayfs need not sync
    it (``volatile``, as podman does); a kept container's layer is synced as usual."""
    kept = md.out("run", "-d", "--network", "none", "busybox", "sleep", "60").strip()
    gone = md.out("run", "-d", "--rm", "--network", "none", "busybox", "sleep", "60").strip()
    try:
        assert "volatile" in _rootfs_mount_line(gone).split(" - ")[1]
        assert "volatile" not in _rootfs_mount_line(kept).split(" - ")[1]
    finally:
        md.out("rm", "-f", kept, gone)


def test_rm_refuses_running_unless_forced(md):
    md.out("run", "-d", "--name", "busy", "busybox", "sleep", "60")
    r = md("rm", "busy")
    assert r.returncode == 1 and "cannot remove a running container" in r.stderr
    md.out("rm", "-f", "busy")
    assert md.out("ps", "-aq") == ""


def test_create_then_start_and_name_conflict(md):
    cid = md.out("create", "--name", "later", "busybox", "echo", "from-create").strip()
    assert "Created" in md.out("ps", "-a")
    r = md("create", "--name", "later", "busybox")
    assert r.returncode == 125 and "already in use" in r.stderr
    assert md.out("start", "-a", "later") == "from-create\n"
    md.out("start", "later")
    assert md.out("wait", cid) == "0\n"
    assert md.out("logs", "later") == "from-create\nfrom-create\n"
    md.out("rm", "later")


def test_inspect_looks_like_docker(md):
    import json
    md.out("run", "--name", "insp", "-e", "X=1", "busybox", "true")
    (info,) = json.loads(md.out("inspect", "insp"))
    assert info["Name"] == "/insp"
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert "X=1" in info["Config"]["Env"]
    assert info["Image"].startswith("sha256:")
    assert md("inspect", "nosuch").returncode == 1
    md.out("rm", "insp")


def test_kill_with_signal(md):
    md.out("run", "-d", "--name", "k", "busybox", "sleep", "60")
    md.out("kill", "-s", "TERM", "k")  # PID 1 ignores TERM without a handler
    md.out("kill", "k")
    assert md.out("wait", "k") == "137\n"
    md.out("rm", "k")


def test_runc_runs_the_same_bundle(md):
    import shutil
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    script = "hostname; id; echo $$; echo $FOO; grep CapEff /proc/self/status"
    ours = md.out("run", "--rm", "--hostname", "same", "-e", "FOO=bar", "busybox", "sh", "-c", script)
    theirs = md.out("run", "--rm", "--runtime", "runc", "--hostname", "same", "-e", "FOO=bar",
                    "busybox", "sh", "-c", script)
    assert ours == theirs
    assert ours.split("\n")[2] == "1"


def test_tty_gives_a_real_terminal(md):
    import pty
    import subprocess
    import sys
    from helpers_runtime import read_until_eio
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "minidocker", "run", "--rm", "-it", "busybox", "sh"],
                            stdin=slave, stdout=slave, stderr=slave, env=md.env, start_new_session=True)
    os.close(slave)
    os.write(master, b"tty; echo done-$((6*7)); exit 5\n")
    try:
        out = read_until_eio(master, idle_timeout=20)
    finally:
        code = proc.wait(timeout=20)
        os.close(master)
    text = out.decode(errors="replace")
    assert "/dev/pts/0" in text
    assert "done-42" in text
    assert code == 5


def test_two_runs_at_once_do_not_collide(md):
    import subprocess
    import sys
    procs = [subprocess.Popen([sys.executable, "-m", "minidocker", "run", "--rm", "busybox", "hostname"],
                              stdout=subprocess.PIPE, text=True, env=md.env) for _ in range(4)]
    names = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(names)) == 4
    assert md.out("ps", "-aq") == ""
