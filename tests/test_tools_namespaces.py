"""The one-tool-per-slide namespace commands (issue 2), and the kernel functions under them.

Each tool test runs ``tools/unshare-*`` the way its ``--help`` says and checks what the
slide shows: what the command printed inside, and that the outside did not change.
The user-namespace tests run the tool as an ordinary user (uid 1000 through
``setpriv``) with the system's ``/usr/bin/python3``, as on the slide.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import REPO, TOOLS, needs_root, run_tool
from helpers_runtime import read_until_eio
from minidocker.kernel import mounts, namespaces, syscalls, userns

pytestmark = needs_root

UNPRIVILEGED_UID = 1000
SYSTEM_PYTHON = "/usr/bin/python3"
NAMESPACE_TOOLS = ("unshare-mount", "unshare-net", "unshare-pid", "unshare-uts",
                   "unshare-user", "unshare-ipc")


def need(*programs):
    missing = [p for p in programs if not shutil.which(p)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on the host")


def wait_until(predicate, what, timeout=10.0):
    """Poll ``predicate`` until true; fail the test (not a timing assertion) if it never is."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def child_of(pid):
    """The first child of process ``pid`` (the tool's forked command), or None."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except FileNotFoundError:
        return None
    return int(children[0]) if children else None


def command_child(pid, name):
    """The child of tool ``pid`` once it runs ``name`` (exec done); None before that."""
    child = child_of(pid)
    try:
        with open(f"/proc/{child}/comm") as f:
            return child if f.read().strip() == name else None
    except (FileNotFoundError, ProcessLookupError, TypeError):
        return None


def is_gone(pid):
    """True when ``pid`` has exited (gone, or a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


# ------------------------------------------------------------------ running as a user
@pytest.fixture(scope="module")
def user_tools():
    """``tools/`` and ``minidocker/`` copied where uid 1000 can read them.

    The checkout may live under /root (mode 700), and the venv's python under pyenv in
    /root: an ordinary user can use neither, so these tests use a world-readable copy and
    the system's python, as a user on the slide would."""
    if not os.path.exists(SYSTEM_PYTHON) or not shutil.which("setpriv"):
        pytest.skip(f"needs {SYSTEM_PYTHON} and setpriv to run a tool as an ordinary user")
    base = tempfile.mkdtemp(prefix="nstools-")
    try:
        os.chmod(base, 0o755)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(TOOLS, os.path.join(base, "tools"), ignore=ignore)
        shutil.copytree(os.path.join(REPO, "minidocker"), os.path.join(base, "minidocker"),
                        ignore=ignore)
        probe = subprocess.run(as_user(["unshare", "--user", "true"]), capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"ordinary users cannot make user namespaces here: {probe.stderr.strip()}")
        yield os.path.join(base, "tools")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_user(argv):
    return ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}",
            "--clear-groups", *argv]


USER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C"}


def tool_as_user(user_tools, name, *args, **popen_kwargs):
    argv = as_user([SYSTEM_PYTHON, os.path.join(user_tools, name), *args])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=USER_ENV,
                          **popen_kwargs)


# ------------------------------------------------------------------ every tool
@pytest.mark.parametrize("name", NAMESPACE_TOOLS)
def test_help_names_the_slide_and_what_to_try(name):
    result = run_tool(name, "--help")
    assert result.returncode == 0
    assert "Slide: \"" in result.stdout and "Try it:" in result.stdout
    assert f"usage: {name} [options] [COMMAND [ARGS...]]" in result.stdout


@pytest.mark.parametrize("name", NAMESPACE_TOOLS)
def test_default_command_is_a_shell(name):
    result = run_tool(name, input="echo shell-ran-$((6*7))\n")
    assert result.returncode == 0, result.stderr
    assert "shell-ran-42" in result.stdout


def test_missing_command_exits_127_with_one_line():
    result = run_tool("unshare-uts", "no-such-command-xyz")
    assert result.returncode == 127
    assert result.stderr == "unshare-uts: no-such-command-xyz: command not found\n"


def test_bad_option_exits_125():
    result = run_tool("unshare-net", "--no-such-flag")
    assert result.returncode == 125
    assert "unshare-net: unrecognized arguments: --no-such-flag" in result.stderr


def test_without_root_the_error_names_the_call(user_tools):
    result = tool_as_user(user_tools, "unshare-mount", "true")
    assert result.returncode == 125
    assert result.stderr.startswith("unshare-mount: unshare(0x20000): Operation not permitted")
    assert result.stderr.count("\n") == 1


# ------------------------------------------------------------------ mount
def test_mount_bind_inside_is_not_seen_outside(tmp_path):
    foo = tmp_path / "foo"
    foo.mkdir()
    result = run_tool("unshare-mount", "sh", "-c", f"mount -n / {foo} -o bind && ls {foo}")
    assert result.returncode == 0, result.stderr
    inside = result.stdout.split()
    assert {"etc", "proc", "tmp"} <= set(inside)   # the slide: ls /foo lists /
    assert os.listdir(foo) == []                   # ... and is empty again after exit
    assert not mounts.is_mountpoint(str(foo))


def test_mount_every_mount_is_private_inside():
    result = run_tool("unshare-mount", "cat", "/proc/self/mountinfo")
    assert result.returncode == 0, result.stderr
    # mountinfo's optional fields say "shared:N" for a mount that propagates.
    assert result.stdout.strip() and "shared:" not in result.stdout


# ------------------------------------------------------------------ net
def test_net_only_lo_and_down():
    need("ip")
    result = run_tool("unshare-net", "ip", "-o", "link")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert re.match(r"1: lo: <LOOPBACK> .*state DOWN", lines[0])


CONNECT_LOOPBACK = """
import errno, socket
server = socket.socket()
try:
    server.bind(("127.0.0.1", 0)); server.listen()
    client = socket.create_connection(server.getsockname())
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_net_loopback_works_only_with_lo_up():
    down = run_tool("unshare-net", sys.executable, "-c", CONNECT_LOOPBACK)
    up = run_tool("unshare-net", "--lo-up", sys.executable, "-c", CONNECT_LOOPBACK)
    assert down.stdout.strip() == "ENETUNREACH"   # lo down: no route, not even to 127.0.0.1
    assert up.stdout.strip() == "connected"
    if shutil.which("ip"):
        link = run_tool("unshare-net", "--lo-up", "ip", "-o", "link")
        assert "<LOOPBACK,UP,LOWER_UP>" in link.stdout


@contextlib.contextmanager
def _a_host_device():
    """A network device of the host that other tests do not add or remove (veths and
    bridges come and go while the suite runs): the one of the default route, or else
    the first one that is not lo. A machine with only lo (the cgroup-v2 VM) gets a veth
    pair of this test's own for the while."""
    with open("/proc/net/route") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "00000000":
                yield fields[0]
                return
    others = sorted(d for d in os.listdir("/sys/class/net") if d != "lo")
    if others:
        yield others[0]
        return
    name = f"mdts{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"],
                   check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_net_sysfs_is_the_hosts_unless_mounted_fresh():
    """/sys shows the devices of the network namespace it was mounted in: the host's
    /sys still lists the host's devices inside (and the tool says so on stderr, once);
    --mount-sysfs mounts one from inside, which agrees with ``ip link``; the host's
    /sys is left as it was."""
    need("ip")
    with _a_host_device() as device:
        _check_sysfs_views(device)


def _check_sysfs_views(device: str) -> None:
    sys_mounts = mounts.mountpoints().count("/sys")
    stale = run_tool("unshare-net", "ls", "/sys/class/net")
    assert stale.returncode == 0
    assert {"lo", device} <= set(stale.stdout.split())
    assert stale.stderr.splitlines() == [
        "unshare-net: note: /sys is the host's (mounted in the host's network namespace): "
        "/sys/class/net lists the host's devices, not this namespace's; --mount-sysfs "
        "mounts a fresh sysfs"]
    fresh = run_tool("unshare-net", "--mount-sysfs", "sh", "-c",
                     "ls /sys/class/net; ip -o link | cut -d: -f2")
    assert (fresh.returncode, fresh.stderr) == (0, "")
    assert [w.strip() for w in fresh.stdout.split()] == ["lo", "lo"]
    up = run_tool("unshare-net", "--mount-sysfs", "--lo-up", "cat", "/sys/class/net/lo/flags")
    assert int(up.stdout, 16) & 0x1                      # IFF_UP, as ip link says
    quiet = run_tool("unshare-net", "ip", "-o", "link")  # does not read /sys: no note
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert mounts.mountpoints().count("/sys") == sys_mounts
    assert os.path.exists(f"/sys/class/net/{device}")   # the host's /sys as it was


# ------------------------------------------------------------------ pid
def test_pid_shell_is_pid_1_and_ps_sees_only_the_namespace():
    need("ps")
    procs_before = mounts.mountpoints().count("/proc")
    result = run_tool("unshare-pid", "sh", "-c", "echo $$; ps -eo pid=,comm=")
    assert result.returncode == 0, result.stderr
    echo, *ps = result.stdout.splitlines()
    assert echo == "1"
    processes = dict(line.split(None, 1) for line in ps)
    assert processes["1"] == "sh"
    assert set(processes.values()) <= {"sh", "ps"}
    assert mounts.mountpoints().count("/proc") == procs_before   # the fresh /proc stayed inside


def test_pid_without_a_fresh_proc_ps_sees_the_host():
    need("ps")
    result = run_tool("unshare-pid", "--no-mount-proc", "sh", "-c", "echo $$; ps -eo pid=")
    echo, *ps = result.stdout.split()
    assert echo == "1"                      # the shell is PID 1 all the same ...
    assert str(os.getpid()) in ps           # ... but the host's /proc shows everyone


def test_pid_exit_status_is_passed_on():
    assert run_tool("unshare-pid", "sh", "-c", "exit 7").returncode == 7


def test_pid_signals_are_forwarded_to_the_command():
    script = 'trap "echo got TERM; exit 3" TERM; echo ready; while :; do sleep 0.05; done'
    proc = subprocess.Popen([sys.executable, os.path.join(TOOLS, "unshare-pid"), "sh", "-c", script],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert "got TERM" in out
        assert proc.returncode == 3
    finally:
        stop(proc)


def test_pid_killed_command_reports_128_plus_signal():
    proc = subprocess.Popen([sys.executable, os.path.join(TOOLS, "unshare-pid"), "sleep", "60"],
                            stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: command_child(proc.pid, "sleep"), "the tool's child to run sleep")
        # SIGKILL from an ancestor namespace reaches even a PID 1.
        os.kill(command_child(proc.pid, "sleep"), signal.SIGKILL)
        assert proc.wait(timeout=20) == 128 + signal.SIGKILL
    finally:
        stop(proc)


def test_pid_killing_the_tool_kills_the_command():
    proc = subprocess.Popen([sys.executable, os.path.join(TOOLS, "unshare-pid"), "sleep", "60"],
                            stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: command_child(proc.pid, "sleep"), "the tool's child to run sleep")
        child = command_child(proc.pid, "sleep")
        proc.kill()   # the tool cannot pass SIGKILL on: PR_SET_PDEATHSIG does it
        proc.wait()
        wait_until(lambda: is_gone(child), "the command to die with the tool")
    finally:
        stop(proc)


def test_pid_interactive_shell_on_a_terminal_keeps_its_exit_status():
    """On a terminal the command gets its own process group in the foreground: an
    interactive shell as PID 1 then exits cleanly with its own status."""
    proc_pid, master = pty.fork()
    if proc_pid == 0:
        try:
            os.execv(sys.executable, [sys.executable, os.path.join(TOOLS, "unshare-pid"), "/bin/sh", "-i"])
        finally:
            os._exit(127)
    output = b""
    try:
        os.write(master, b"echo pid=$$\nexit 4\n")
        output = read_until_eio(master, idle_timeout=20)
    finally:
        os.close(master)
        deadline = time.monotonic() + 20
        while (reaped := os.waitpid(proc_pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if reaped[0] == 0:   # still running: the test failed; do not leave it behind
            os.kill(proc_pid, signal.SIGKILL)
            reaped = os.waitpid(proc_pid, 0)
        status = reaped[1]
    text = output.decode(errors="replace")
    assert "pid=1" in text
    assert "Cannot set tty process group" not in text
    assert os.waitstatus_to_exitcode(status) == 4


# ------------------------------------------------------------------ uts
def test_uts_hostname_inside_does_not_change_the_host():
    host = socket.gethostname()
    result = run_tool("unshare-uts", "sh", "-c", "hostname mycontainer; uname -n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "mycontainer\n"
    assert socket.gethostname() == host


def test_uts_hostname_option():
    result = run_tool("unshare-uts", "--hostname", "web1", "uname", "-n")
    assert result.stdout == "web1\n"


def test_uts_too_long_hostname_is_refused_before_anything_changes():
    host = socket.gethostname()
    result = run_tool("unshare-uts", "--hostname", "x" * 65, "uname", "-n")
    assert result.returncode == 125
    assert result.stdout == ""
    assert "longer than 64 bytes" in result.stderr and result.stderr.count("\n") == 1
    assert socket.gethostname() == host


# ------------------------------------------------------------------ user
def test_user_unmapped_user_is_nobody(user_tools):
    result = tool_as_user(user_tools, "unshare-user", "id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("uid=65534(nobody) gid=65534(nogroup)")


def test_user_map_root_user_makes_root(user_tools):
    result = tool_as_user(user_tools, "unshare-user", "--map-root-user", "sh", "-c",
                          "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].startswith("uid=0(root) gid=0(root)")
    assert [line.split() for line in out[1:3]] == [["0", str(UNPRIVILEGED_UID), "1"]] * 2
    assert out[3] == "deny"


def test_user_map_written_by_hand_from_another_shell(user_tools):
    argv = as_user([SYSTEM_PYTHON, os.path.join(user_tools, "unshare-user"), "--wait-for-map", "id"])
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=USER_ENV)
    try:
        prompt = proc.stderr.readline()
        pid = proc.pid   # setpriv execs python: the PID printed is the one we started
        assert prompt == (f"PID {pid}: in another shell run: "
                          f"echo 0 {UNPRIVILEGED_UID} 1 > /proc/{pid}/uid_map\n")
        assert proc.poll() is None   # waiting for the map
        # "another shell", as the same ordinary user, exactly as the prompt says
        other = subprocess.run(as_user(["sh", "-c", prompt.split("run: ", 1)[1]]),
                               capture_output=True, text=True, env=USER_ENV)
        assert other.returncode == 0, other.stderr
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert out == "uid=0(root) gid=65534(nogroup) groups=65534(nogroup)\n"
    finally:
        stop(proc)


def test_user_as_root_unmapped_root_is_nobody_too():
    result = run_tool("unshare-user", "id", "-u")
    assert result.stdout == "65534\n"


# ------------------------------------------------------------------ ipc
def _queue_keys(ipcs_output):
    """Keys of the message queues in ``ipcs -q`` output."""
    return {line.split()[0] for line in ipcs_output.splitlines() if line.startswith("0x")}


def test_ipc_queues_are_not_shared_either_way():
    need("ipcmk", "ipcs", "ipcrm")
    made = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True)
    host_queue = made.stdout.split(":")[1].strip()
    try:
        host_keys = _queue_keys(subprocess.run(["ipcs", "-q"], capture_output=True, text=True).stdout)
        result = run_tool("unshare-ipc", "sh", "-c", "ipcs -q; ipcmk -Q >/dev/null; ipcmk -M 4096; ipcs -q -m")
        assert result.returncode == 0, result.stderr
        before, after = result.stdout.split("Shared memory id:", 1)
        assert _queue_keys(before) == set()                   # the host's queue is not inside
        inside_keys = _queue_keys(after)
        assert len(inside_keys) == 2                          # the queue and the segment
        outside = subprocess.run(["ipcs", "-q", "-m"], capture_output=True, text=True).stdout
        assert not inside_keys & _queue_keys(outside)          # ... and they are not outside
        assert host_keys <= _queue_keys(outside)
    finally:
        subprocess.run(["ipcrm", "-q", host_queue], check=True)


# ------------------------------------------------------------------ kernel layer
def test_flags_for_names_and_unknown_kinds():
    assert namespaces.flags_for(["pid", "uts"]) == syscalls.CLONE_NEWPID | syscalls.CLONE_NEWUTS
    assert namespaces.flags_for([]) == 0
    with pytest.raises(ValueError, match="unknown namespace kind 'bogus'"):
        namespaces.flags_for(["bogus"])


def test_format_map():
    assert userns.format_map([(0, 1000, 1), (1, 100000, 65536)]) == "0 1000 1\n1 100000 65536\n"
    assert userns.format_map([]) == ""


@pytest.fixture
def uts_namespace_holder():
    """A process sitting in a new UTS namespace whose hostname is ``inner-ns``."""
    proc = subprocess.Popen([sys.executable, os.path.join(TOOLS, "unshare-uts"), "--hostname",
                             "inner-ns", "sleep", "60"], stdin=subprocess.DEVNULL)

    def exec_done():
        with open(f"/proc/{proc.pid}/comm") as f:
            return f.read().strip() == "sleep"
    try:
        wait_until(exec_done, "the tool to exec sleep")
        yield proc.pid
    finally:
        stop(proc)


def test_same_and_enter_a_namespace_made_by_another_process(uts_namespace_holder):
    pid = uts_namespace_holder
    assert namespaces.same("self", "self", "uts")
    assert not namespaces.same(pid, "self", "uts")
    assert namespaces.same(pid, "self", "net")
    # enter() changes the caller, so do it in a separate process.
    code = ("import socket; from minidocker.kernel import namespaces; "
            f"namespaces.enter({pid}, ['uts', 'net']); print(socket.gethostname())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "inner-ns\n"
    assert socket.gethostname() != "inner-ns"


def test_syscall_errors_name_the_call():
    with pytest.raises(OSError) as e:
        syscalls.mount(None, "/no/such/dir-xyz", None, syscalls.MS_PRIVATE)
    assert e.value.errno == errno.ENOENT
    assert str(e.value).startswith("[Errno 2] mount(None, '/no/such/dir-xyz', None, 0x40000, None)")
    with pytest.raises(OSError, match=r"setns\(-1, 0x4000000\): Bad file descriptor"):
        syscalls.setns(-1, syscalls.CLONE_NEWUTS)
    with pytest.raises(OSError, match=r"umount2\('/no/such/dir-xyz', 0x0\)"):
        syscalls.umount2("/no/such/dir-xyz")


def test_write_uid_map_of_another_process_once():
    proc = subprocess.Popen([sys.executable, os.path.join(TOOLS, "unshare-user"), "--wait-for-map",
                             "sh", "-c", "id -u; cat /proc/self/uid_map"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith(f"PID {proc.pid}: ")
        assert userns.read_map(proc.pid) == []
        # The tool runs as root (uid 0 outside), so "0 0 1" is what makes it root inside;
        # "0 1000 1" would leave it unmapped, i.e. still nobody.
        userns.write_uid_map(proc.pid, [(0, 0, 1)])
        with pytest.raises(OSError) as again:   # a map is written once, ever
            userns.write_uid_map(proc.pid, [(0, UNPRIVILEGED_UID, 1)])
        assert again.value.errno == errno.EPERM
        assert f"write '0 {UNPRIVILEGED_UID} 1' to /proc/{proc.pid}/uid_map" in str(again.value)
        out, _ = proc.communicate(timeout=20)
        assert out.split() == ["0", "0", "0", "1"]
    finally:
        stop(proc)


def test_map_root_to_another_process_denies_setgroups_first():
    proc = subprocess.Popen([sys.executable, os.path.join(TOOLS, "unshare-user"), "--wait-for-map",
                             "sh", "-c", "read go; id; cat /proc/self/setgroups"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith(f"PID {proc.pid}: ")
        userns.map_root_to(proc.pid, 0, 0)   # as "unshare --map-root-user" would, from outside
        assert userns.read_map(proc.pid, "gid") == [(0, 0, 1)]
        out, _ = proc.communicate("go\n", timeout=20)   # the shell waited for both maps
        assert out.splitlines()[0].startswith("uid=0(root) gid=0(root)")
        assert out.splitlines()[1] == "deny"
    finally:
        stop(proc)


MOUNT_STEPS = """
import errno, os, sys
from minidocker.kernel import mounts, namespaces
scratch, target = sys.argv[1], sys.argv[2]
namespaces.unshare(["mnt"])
mounts.make_private("/")
mounts.mount_tmpfs(scratch)
print("tmpfs mounted:", mounts.is_mountpoint(scratch))
os.mkdir(scratch + "/src")
with open(scratch + "/src/file", "w") as f:
    f.write("hello")
mounts.bind_mount(scratch + "/src", target, readonly=True)
print("read through bind:", open(target + "/file").read())
try:
    open(target + "/new", "w")
except OSError as e:
    print("write:", errno.errorcode[e.errno])
mounts.umount(target)
mounts.umount(scratch, lazy=True)
print("still mounted:", mounts.is_mountpoint(scratch), mounts.is_mountpoint(target))
"""


def test_mount_steps_in_a_private_namespace(tmp_path):
    scratch, target = tmp_path / "scratch", tmp_path / "target"
    scratch.mkdir()
    target.mkdir()
    result = subprocess.run([sys.executable, "-c", MOUNT_STEPS, str(scratch), str(target)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["tmpfs mounted: True", "read through bind: hello",
                                          "write: EROFS", "still mounted: False False"]
    assert os.listdir(scratch) == [] and not mounts.is_mountpoint(str(scratch))
