"""``minidocker-runtime``: runc's command line, each verb a new process, as engines call it.

Every test drives the runtime the way conmon or containerd-shim does: ``create`` in
one process, then ``start``, ``state``, ``kill``, ``delete``... each in another, with
nothing shared but ``--root``. What is checked is what a peer sees: what the container
printed, the state JSON, the pid file, the fd that arrives on the console socket, the
kernel's view (namespaces, cgroup, freezer), and that nothing is left afterwards.
Where runc is installed, the same steps run under runc and must give the same answers.
"""

from __future__ import annotations

import array
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import needs_root
from helpers_runtime import new_id, overlay_bundle, write_bundle_spec
from helpers_runtime_cli import RUNTIME, ContainerReaper, runtime_cli
from minidocker.kernel import cgroups

pytestmark = needs_root


@pytest.fixture(scope="module", autouse=True)
def reaper():
    """This test process plays conmon: the subreaper that reaps the containers' inits."""
    r = ContainerReaper()
    yield r
    r.stop()


@pytest.fixture
def root(tmp_path):
    """A private ``--root``; whatever a failed test left in it is force-deleted."""
    path = str(tmp_path / "state")
    yield path
    if os.path.isdir(path):
        for cid in os.listdir(path):
            runtime_cli(path, "delete", "--force", cid)


@pytest.fixture
def bundle(busybox_rootfs, tmp_path):
    with overlay_bundle(busybox_rootfs, str(tmp_path / "bundle")) as directory:
        yield directory


def spec_for(bundle: str, args, cid: str, **kwargs) -> dict:
    return write_bundle_spec(bundle, args, cid, **kwargs)


def state_of(root: str, cid: str) -> dict:
    r = runtime_cli(root, "state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_status(root: str, cid: str, status: str) -> dict:
    seen = {}

    def reached():
        seen.update(state_of(root, cid))
        return seen["status"] == status
    wait_for(reached)
    return seen


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The message of runc's single error line: ``time=... level=error msg="..."``."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith('time="') and " level=error msg=" in lines[0], lines[0]
    msg = lines[0].split(" msg=", 1)[1]
    return json.loads(msg) if msg.startswith('"') else msg


# --------------------------------------------------------------------------- lifecycle
def test_create_start_state_kill_delete_from_new_processes(root, bundle, tmp_path):
    cid = new_id()
    out = tmp_path / "out"
    spec_for(bundle, ["sh", "-c", 'echo "started as $$"; trap "echo got TERM; exit 3" TERM; '
                                  "while :; do sleep 0.05; done"], cid)
    pid_file = tmp_path / "init.pid"
    with open(out, "w") as f:
        r = runtime_cli(root, "create", "--bundle", bundle, "--pid-file", pid_file, cid,
                        stdout=f, stderr=subprocess.STDOUT, capture_output=False)
    assert r.returncode == 0
    # created: the init is set up, blocked before exec (still our Python, not sh)
    st = state_of(root, cid)
    pid = int(pid_file.read_text())
    assert (st["status"], st["pid"], st["id"], st["bundle"]) == ("created", pid, cid, bundle)
    assert st["rootfs"] == os.path.join(bundle, "rootfs") and st["ociVersion"]
    assert st["created"].endswith("Z") and "T" in st["created"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert b"minidocker.runtime" in f.read()
    for kind in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
    assert out.read_text() == ""
    assert os.path.exists(os.path.join(root, cid, "exec.fifo"))
    # start: from another process; the command runs and is PID 1
    r = runtime_cli(root, "start", cid)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "started as 1" in out.read_text())
    assert state_of(root, cid)["status"] == "running"
    assert not os.path.exists(os.path.join(root, cid, "exec.fifo"))
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().startswith(b"sh\0-c\0")
    assert one_error_line(runtime_cli(root, "start", cid)) == "cannot start an already running container"
    assert one_error_line(runtime_cli(root, "delete", cid)) == \
        f"cannot delete container {cid} that is not stopped: running"
    # kill: the default signal is SIGTERM; the trap answers; stopped stays until delete
    assert runtime_cli(root, "kill", cid).returncode == 0
    st = wait_status(root, cid, "stopped")
    assert st["pid"] == 0 and "got TERM" in out.read_text()
    assert one_error_line(runtime_cli(root, "kill", cid, "KILL")) == "container not running"
    assert one_error_line(runtime_cli(root, "start", cid)) == "cannot start a container that has stopped"
    cg = cgroups.open_cgroup(f"minidocker/{cid}")
    assert cg.exists()
    assert runtime_cli(root, "delete", cid).returncode == 0
    assert not cg.exists() and not os.path.exists(os.path.join(root, cid))
    assert one_error_line(runtime_cli(root, "state", cid)) == "container does not exist"


def test_delete_of_a_created_container_kills_its_init(root, bundle):
    cid = new_id()
    spec_for(bundle, ["true"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    pid = state_of(root, cid)["pid"]
    r = runtime_cli(root, "delete", cid)          # no --force needed for "created"
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/cmdline").read() == ""
    assert not cgroups.open_cgroup(f"minidocker/{cid}").exists()


def test_delete_force_kills_a_running_container_and_every_process_in_it(root, bundle):
    cid = new_id()
    spec_for(bundle, ["sh", "-c", "sleep 100 & sleep 100; true"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert runtime_cli(root, "start", cid).returncode == 0
    cg = cgroups.open_cgroup(f"minidocker/{cid}")
    wait_for(lambda: len(cg.pids()) == 3)
    r = runtime_cli(root, "delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not cg.exists() and not os.path.isdir(os.path.join(root, cid))
    # runc: deleting, with --force, what does not exist is no error
    assert runtime_cli(root, "delete", "--force", cid).returncode == 0


@pytest.mark.parametrize("signal_text", ["9", "KILL", "kill", "SIGKILL", "sigKill"])
def test_kill_signal_forms(root, bundle, signal_text):
    cid = new_id()
    spec_for(bundle, ["sleep", "100"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert runtime_cli(root, "start", cid).returncode == 0
    assert runtime_cli(root, "kill", cid, signal_text).returncode == 0
    wait_status(root, cid, "stopped")
    assert runtime_cli(root, "delete", cid).returncode == 0


def test_kill_all_pause_resume_ps_and_list(root, bundle):
    cid = new_id()
    spec_for(bundle, ["sh", "-c", "sleep 100 & sleep 100; true"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert runtime_cli(root, "start", cid).returncode == 0
    cg = cgroups.open_cgroup(f"minidocker/{cid}")
    wait_for(lambda: len(cg.pids()) == 3)
    pids = cg.pids()
    r = runtime_cli(root, "ps", "--format", "json", cid)
    assert sorted(json.loads(r.stdout)) == pids
    r = runtime_cli(root, "ps", cid)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["UID", "PID"] and len(lines) == 4
    assert sorted(int(line.split()[1]) for line in lines[1:]) == pids
    # pause: the freezer stops every process, which cannot tell
    assert runtime_cli(root, "pause", cid).returncode == 0
    assert state_of(root, cid)["status"] == "paused" and cg.is_frozen()
    assert one_error_line(runtime_cli(root, "pause", cid)) == "container not running"
    assert runtime_cli(root, "resume", cid).returncode == 0
    assert state_of(root, cid)["status"] == "running" and not cg.is_frozen()
    assert one_error_line(runtime_cli(root, "resume", cid)) == "container not paused"
    # list: runc's table (tabwriter columns), -q, and json
    r = runtime_cli(root, "list")
    header, row = r.stdout.splitlines()
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert row.split()[:4] == [cid, str(pids[0]), "running", bundle] and row.split()[-1] == "root"
    assert header.index("PID") == len(cid) + 3   # a cell is its column's widest + 3
    assert runtime_cli(root, "list", "-q").stdout == cid + "\n"
    listed = json.loads(runtime_cli(root, "list", "--format", "json").stdout)
    assert [(s["id"], s["status"], s["owner"]) for s in listed] == [(cid, "running", "root")]
    # kill --all: every process of the cgroup, not only the init
    assert runtime_cli(root, "kill", "--all", cid, "KILL").returncode == 0
    wait_for(lambda: not cg.pids())
    wait_status(root, cid, "stopped")
    assert runtime_cli(root, "delete", cid).returncode == 0
    assert runtime_cli(root, "list", "--format", "json").stdout.strip() == "null"


# --------------------------------------------------------------------------- exec
def test_exec_args_flags_process_file_and_detach(root, bundle, tmp_path):
    cid = new_id()
    spec_for(bundle, ["sleep", "100"], cid, env=["FROM_SPEC=1"])
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert runtime_cli(root, "exec", cid, "true").returncode == 0   # created: allowed
    assert runtime_cli(root, "start", cid).returncode == 0
    r = runtime_cli(root, "exec", "--env", "EXTRA=2", "--cwd", "/tmp", "--user", "1000:1000", cid,
                    "sh", "-c", 'echo "$FROM_SPEC $EXTRA $(pwd) $(id -u):$(id -g)"; exit 4')
    assert (r.returncode, r.stdout) == (4, "1 2 /tmp 1000:1000\n"), r.stderr
    process = {"args": ["sh", "-c", "echo from-file $A $HOME; ulimit -n; grep ^CapEff /proc/self/status"],
               "env": ["A=b", "PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                "permitted": ["CAP_KILL"]},
               "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]}
    (tmp_path / "process.json").write_text(json.dumps(process))
    r = runtime_cli(root, "exec", "--process", tmp_path / "process.json", cid)
    assert r.stdout.split() == ["from-file", "b", "/root", "512", "CapEff:", "0000000000000020"], r.stderr
    # --detach: returns at once; the pid file names the process, which lives on
    pid_file = tmp_path / "exec.pid"
    r = runtime_cli(root, "exec", "--detach", "--pid-file", pid_file, cid, "sleep", "100")
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    assert pid in cgroups.open_cgroup(f"minidocker/{cid}").pids()
    # an exec error: runc's words (podman maps "executable file not found" to 127)
    assert one_error_line(runtime_cli(root, "exec", cid, "nonexist")) == \
        'exec failed: unable to start container process: exec: "nonexist": executable file not found in $PATH'
    assert runtime_cli(root, "delete", "--force", cid).returncode == 0
    assert one_error_line(runtime_cli(root, "exec", cid, "true")) == "container does not exist"


def test_exec_tty_is_relayed_without_a_console_socket(root, bundle):
    cid = new_id()
    spec_for(bundle, ["sleep", "100"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert runtime_cli(root, "start", cid).returncode == 0
    cmd = " ".join(RUNTIME + ["--root", root, "exec", "--tty", cid, "sh", "-c", "'tty; exit 6'"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 6 and "/dev/pts/0" in r.stdout, r
    assert one_error_line(runtime_cli(root, "exec", "--tty", "--detach", cid, "true")) == \
        "cannot allocate tty if runc will detach without setting console socket"
    assert runtime_cli(root, "delete", "--force", cid).returncode == 0


# --------------------------------------------------------------------------- console socket
class ConsoleSocket:
    """What conmon does with ``--console-socket``: listen, accept one connection, and
    receive the pty master with ``recvmsg`` (counting the fds that come along)."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.fds: list[int] = []
        self.name = b""
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            msg, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(16 * fds.itemsize))
            for level, kind, data in ancdata:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            self.name, self.fds = msg, list(fds)
            self.more = conn.recv(1)   # b"": one message, then the runtime closed

    def close(self):
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


def test_console_socket_gets_exactly_one_pty_master(root, bundle, tmp_path):
    from helpers_runtime import read_until_eio
    cid = new_id()
    spec_for(bundle, ["sh", "-c", "tty; echo $TERM; stty size"], cid, terminal=True)
    console = ConsoleSocket(str(tmp_path / "console.sock"))
    try:
        r = runtime_cli(root, "create", "--bundle", bundle, "--console-socket", console.path, cid)
        assert r.returncode == 0, r.stderr
        console.thread.join(10)
        assert len(console.fds) == 1 and console.more == b""
        assert console.name.startswith(b"/dev/pts/")
        master = console.fds[0]
        import fcntl
        import struct
        import termios
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
        assert runtime_cli(root, "start", cid).returncode == 0
        out = read_until_eio(master, idle_timeout=10).decode().split()
        assert out == ["/dev/pts/0", "xterm", "33", "77"]
        wait_status(root, cid, "stopped")
    finally:
        console.close()
    assert runtime_cli(root, "delete", cid).returncode == 0
    # a terminal needs somebody to give it to; a console socket needs a terminal
    assert one_error_line(runtime_cli(root, "create", "--bundle", bundle, cid)) == \
        "cannot allocate tty if runc will detach without setting console socket"
    spec_for(bundle, ["true"], cid)
    assert one_error_line(runtime_cli(root, "create", "--bundle", bundle, "--console-socket",
                                      console.path, cid)) == \
        "cannot use console socket if runc will not detach or allocate tty"
    assert not os.path.exists(os.path.join(root, cid))


# --------------------------------------------------------------------------- errors
def test_errors_are_one_line_and_leave_nothing(root, bundle, tmp_path):
    cid = new_id()
    for verb in (["start"], ["state"], ["kill"], ["delete"], ["pause"], ["resume"], ["ps"],
                 ["exec", "--detach"]):
        args = verb + [cid] + (["true"] if verb[0] == "exec" else [])
        assert one_error_line(runtime_cli(root, *args)) == "container does not exist", verb
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_error_line(runtime_cli(root, "create", "--bundle", empty, cid)) == \
        f"bundle {empty}: no config.json"
    (empty / "config.json").write_text("{not json")
    assert one_error_line(runtime_cli(root, "create", "--bundle", empty, cid)).startswith(
        f"bundle {empty}: cannot read config.json: ")
    spec_for(str(empty), ["true"], cid)
    assert one_error_line(runtime_cli(root, "create", "--bundle", empty, cid)) == \
        f"config.json: root.path {empty}/rootfs is not a directory"
    # a failure half-way through create: the mounts, cgroup and state are undone
    spec_for(bundle, ["true"], cid, cwd="/etc/passwd/sub")
    with open("/proc/self/mountinfo") as f:
        mounts_before = [line for line in f if str(tmp_path) in line]
    msg = one_error_line(runtime_cli(root, "create", "--bundle", bundle, cid))
    assert msg.startswith("create failed: container setup failed: ") and "/etc/passwd/sub" in msg
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if str(tmp_path) in line] == mounts_before
    assert not cgroups.open_cgroup(f"minidocker/{cid}").exists()
    assert not os.path.exists(os.path.join(root, cid))
    # the command is looked up before create returns, as runc 1.1 does
    spec_for(bundle, ["nonexist"], cid)
    assert one_error_line(runtime_cli(root, "create", "--bundle", bundle, cid)) == \
        'create failed: unable to start container process: exec: "nonexist": executable file not found in $PATH'
    assert not cgroups.open_cgroup(f"minidocker/{cid}").exists()
    assert not os.path.exists(os.path.join(root, cid))
    # bad command lines
    spec_for(bundle, ["sleep", "100"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert one_error_line(runtime_cli(root, "create", "--bundle", bundle, cid)) == \
        f"container with id exists: {cid}"
    assert one_error_line(runtime_cli(root, "kill", cid, "SIGNOPE")) == 'unknown signal "SIGNOPE"'
    assert one_error_line(runtime_cli(root, "kill", cid, "99")) == 'unknown signal "99"'
    assert state_of(root, cid)["status"] == "created"
    assert runtime_cli(root, "delete", cid).returncode == 0
    assert one_error_line(runtime_cli(root, "state", "../etc")) == "invalid container id format: ../etc"
    assert "--systemd-cgroup is not supported" in one_error_line(
        runtime_cli(root, "--systemd-cgroup", "state", cid))


def test_log_file_json_and_text(root, tmp_path):
    log = tmp_path / "oci-log"
    r = runtime_cli(root, "--log", log, "--log-format", "json", "state", "nope")
    # the error goes to the log as one JSON object, and plainly to stderr (for conmon)
    assert (r.returncode, r.stderr) == (1, "container does not exist\n")
    entry = json.loads(log.read_text())
    assert sorted(entry) == ["level", "msg", "time"]
    assert (entry["level"], entry["msg"]) == ("error", "container does not exist")
    assert entry["time"].endswith("Z")
    log.unlink()
    runtime_cli(root, "--log", log, "delete", "nope")
    assert log.read_text().endswith(' level=error msg="container does not exist"\n')


def test_version():
    r = subprocess.run(RUNTIME + ["--version"], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].startswith("minidocker-runtime version ")
    assert lines[1] == "spec: 1.0.2-dev"


# --------------------------------------------------------------------------- namespaces, locking
def test_namespace_given_by_path_is_joined(root, bundle, busybox_rootfs, tmp_path):
    """podman makes the network namespace itself and names it by path in the config."""
    first, second = new_id(), new_id()
    spec_for(bundle, ["sleep", "100"], first)
    assert runtime_cli(root, "create", "--bundle", bundle, first).returncode == 0
    pid = state_of(root, first)["pid"]
    with overlay_bundle(busybox_rootfs, str(tmp_path / "second")) as other:
        namespaces = [{"type": t} for t in ("mount", "uts", "pid", "ipc")] + \
                     [{"type": "network", "path": f"/proc/{pid}/ns/net"}]
        spec_for(other, ["sleep", "100"], second, namespaces=namespaces)
        assert runtime_cli(root, "create", "--bundle", other, second).returncode == 0
        other_pid = state_of(root, second)["pid"]
        assert os.readlink(f"/proc/{other_pid}/ns/net") == os.readlink(f"/proc/{pid}/ns/net")
        assert os.readlink(f"/proc/{other_pid}/ns/uts") != os.readlink(f"/proc/{pid}/ns/uts")
        assert runtime_cli(root, "delete", second).returncode == 0
    assert runtime_cli(root, "delete", first).returncode == 0


def test_verbs_at_once_never_corrupt_the_state(root, bundle):
    cid = new_id()
    spec_for(bundle, ["sleep", "100"], cid)
    assert runtime_cli(root, "create", "--bundle", bundle, cid).returncode == 0
    assert runtime_cli(root, "start", cid).returncode == 0
    procs = [subprocess.Popen(RUNTIME + ["--root", root] + args + [cid], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for args in (["state"], ["pause"], ["state"], ["resume"], ["kill"], ["state"],
                          ["delete", "--force"], ["state"], ["delete", "--force"], ["state"])]
    for p in procs:
        out, err = p.communicate(timeout=60)
        if p.returncode == 0 and out.strip().startswith("{"):
            assert json.loads(out)["id"] == cid
        elif p.returncode != 0:
            msg = err.strip().split(" msg=", 1)[1]
            assert json.loads(msg) in ("container does not exist", "container not running",
                                       "container not paused"), err
    assert not os.path.exists(os.path.join(root, cid))
    assert not cgroups.open_cgroup(f"minidocker/{cid}").exists()


# --------------------------------------------------------------------------- run, spec
def test_run_and_spec(root, bundle):
    os.unlink(os.path.join(bundle, "config.json")) if os.path.exists(os.path.join(bundle, "config.json")) else None
    r = runtime_cli(root, "spec", "--bundle", bundle, "--", "sh", "-c", "echo $$ $(hostname); exit 9")
    assert r.returncode == 0 and r.stdout.strip() == os.path.join(bundle, "config.json")
    assert "exists" in one_error_line(runtime_cli(root, "spec", "--bundle", bundle))
    r = runtime_cli(root, "run", "--bundle", bundle, new_id())
    assert (r.returncode, r.stdout) == (9, "1 minidocker\n"), r.stderr
    assert os.listdir(root) == []


# --------------------------------------------------------------------------- same as runc
@pytest.mark.interop
@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed (apt-get install runc)")
def test_the_same_steps_give_the_same_answers_as_runc(bundle, tmp_path):
    """create / state / start / state / kill / state / delete / state, once with runc
    and once with minidocker-runtime: the same statuses, the same state fields, the
    same errors, and the same table columns in ``list``."""
    def runc(root, *args):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            r = subprocess.run(["runc", "--root", root] + [str(a) for a in args], stdout=out,
                               stderr=err, stdin=subprocess.DEVNULL, timeout=60)
            out.seek(0)
            err.seek(0)
            r.stdout, r.stderr = out.read().decode(), err.read().decode()
        return r

    answers = {}
    for name, call in (("runc", runc), ("minidocker", runtime_cli)):
        root = str(tmp_path / f"{name}-state")
        cid = new_id()
        spec_for(bundle, ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"], cid,
                 rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}])
        seen = []
        try:
            seen.append(call(root, "create", "--bundle", bundle, cid).returncode)
            state = json.loads(call(root, "state", cid).stdout)
            seen.append((state["status"], sorted(state), state["bundle"] == bundle))
            seen.append(call(root, "list").stdout.splitlines()[0].split())
            seen.append(call(root, "start", cid).returncode)
            seen.append(json.loads(call(root, "state", cid).stdout)["status"])
            r = call(root, "start", cid)
            seen.append((r.returncode, r.stderr.split(" msg=")[-1].strip()))
            r = call(root, "kill", cid, "NOPE")
            seen.append((r.returncode, r.stderr.split(" msg=")[-1].strip()))
            seen.append(call(root, "kill", cid, "term").returncode)
            deadline = time.monotonic() + 10
            while json.loads(call(root, "state", cid).stdout)["status"] != "stopped":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            seen.append(json.loads(call(root, "state", cid).stdout)["pid"])
            seen.append(call(root, "delete", cid).returncode)
            r = call(root, "state", cid)
            seen.append((r.returncode, r.stderr.split(" msg=")[-1].strip()))
        finally:
            call(root, "delete", "--force", cid)
        answers[name] = seen
    assert answers["minidocker"] == answers["runc"]
