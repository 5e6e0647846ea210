"""podman 4.3 + conmon driving ``minidocker-runtime`` in runc's place.

podman never runs a container itself: conmon calls the OCI runtime's command line
(``create --bundle --pid-file [--console-socket]``, ``start``, ``state``, ``kill``,
``exec --process --detach``, ``pause``, ``resume``, ``delete --force``). Each scenario
runs twice, with ``--runtime runc`` and with ``--runtime minidocker-runtime``, and what
the user sees (output, exit codes, logs, a published port, a terminal) must be the same.
Host only: podman is not in the cgroup-v2 VM.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import needs_root
from peers import PODMAN_CONF, Podman

pytestmark = [needs_root, pytest.mark.interop, pytest.mark.slow]

OURS = os.path.join(os.path.dirname(sys.executable), "minidocker-runtime")
IMAGE = "localhost/busybox"


@pytest.fixture(scope="module")
def podman(busybox_rootfs):
    if not os.path.exists(OURS):
        pytest.skip(f"{OURS} is not installed (pip install -e .)")
    p = Podman.or_skip(prefix="mdrt-")
    try:
        # podman passes --log-format=json --log FILE only to runtimes it knows to write
        # runc's JSON log, and reads that file when a verb fails
        with open(p.conf, "w") as f:
            f.write(PODMAN_CONF + 'runtime_supports_json = ["runc", "crun", "minidocker-runtime"]\n')
        # the session's rootfs is a pytest temporary directory (mode 0700): as the image's
        # "/", it would keep any user but root from finding /bin/sh
        os.chmod(busybox_rootfs, 0o755)
        p.import_rootfs(busybox_rootfs, IMAGE)
        yield p
    finally:
        p.cleanup()


RUNTIMES = ["runc", "minidocker-runtime"]


#: Each runtime's default ``--root``: podman passes no other to the ``container
#: cleanup`` that conmon runs when a container exits.
STATE_ROOTS = {"runc": "/run/runc", "minidocker-runtime": "/run/minidocker-runtime"}


def runtime_args(podman, runtime: str) -> list[str]:
    return ["--runtime", shutil.which("runc") if runtime == "runc" else OURS]


def container_ids(podman, runtime: str) -> set[str]:
    r = podman.run(*runtime_args(podman, runtime), "ps", "-aq", "--no-trunc", check=False)
    return set(r.stdout.split())


def state_left(runtime: str, ids) -> list[str]:
    root = STATE_ROOTS[runtime]
    return [i for i in ids if os.path.exists(os.path.join(root, i))]


def both(podman, scenario):
    """Run ``scenario(run)`` under each runtime; ``run(*args)`` is ``podman ARGS``
    with that runtime. Returns {runtime: what the scenario returned}."""
    seen = {}
    for runtime in RUNTIMES:
        flags = runtime_args(podman, runtime)
        used = set()

        def run(*args, **kw):
            r = podman.run(*flags, *args, check=False, **kw)
            used.update(container_ids(podman, runtime))
            return r
        seen[runtime] = scenario(run)
        podman.run(*flags, "rm", "-af", check=False)
        assert not state_left(runtime, used), f"{runtime} left state for {state_left(runtime, used)}"
    assert seen["minidocker-runtime"] == seen["runc"]
    return seen["runc"]


def test_run_rm_output_exit_codes_env_workdir_user(podman):
    def scenario(run):
        hi = run("run", "--rm", IMAGE, "echo", "hi")
        code = run("run", "--rm", IMAGE, "sh", "-c", "exit 3")
        flags = run("run", "--rm", "-e", "GREETING=hello", "-w", "/tmp", "-u", "1000:1000", IMAGE,
                    "sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g) $$"')
        missing = run("run", "--rm", IMAGE, "nonexist")
        return [(hi.returncode, hi.stdout), code.returncode, (flags.returncode, flags.stdout),
                missing.returncode, "executable file not found in $PATH" in missing.stderr]
    assert both(podman, scenario) == [(0, "hi\n"), 3, (0, "hello /tmp 1000:1000 1\n"), 127, True]


def test_detached_logs_exec_stop_kill_rm(podman):
    def scenario(run):
        out = []
        r = run("run", "-d", "--name", "d1", IMAGE, "sh", "-c",
                'echo started; trap "echo got TERM; exit 7" TERM; while :; do sleep 0.1; done')
        out.append(r.returncode)
        deadline = time.monotonic() + 10
        while "started" not in run("logs", "d1").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        r = run("exec", "d1", "sh", "-c", "echo exec in $(hostname | wc -c) chars; exit 5")
        out.append((r.returncode, r.stdout))
        r = run("exec", "d1", "nonexist")
        out.append((r.returncode, "executable file not found" in r.stderr))
        out.append(run("stop", "-t", "10", "d1").returncode)        # SIGTERM reaches the trap
        out.append(run("logs", "d1").stdout)
        out.append(run("inspect", "--format", "{{.State.ExitCode}}", "d1").stdout)
        out.append(run("rm", "d1").returncode)
        run("run", "-d", "--name", "d2", IMAGE, "sleep", "100")
        out.append(run("kill", "d2").returncode)
        run("wait", "d2")
        out.append(run("inspect", "--format", "{{.State.ExitCode}}", "d2").stdout)
        out.append(run("rm", "d2").returncode)
        return out
    assert both(podman, scenario) == [0, (5, "exec in 13 chars\n"), (127, True), 0,
                                      "started\ngot TERM\n", "7\n", 0, 0, "137\n", 0]


def test_pause_and_unpause(podman):
    def scenario(run):
        run("run", "-d", "--name", "p1", IMAGE, "sleep", "100")
        out = [run("pause", "p1").returncode,
               run("inspect", "--format", "{{.State.Status}}", "p1").stdout]
        out += [run("unpause", "p1").returncode,
                run("inspect", "--format", "{{.State.Status}}", "p1").stdout,
                run("exec", "p1", "echo", "awake").stdout,
                run("rm", "-f", "p1").returncode]
        return out
    assert both(podman, scenario) == [0, "paused\n", 0, "running\n", "awake\n", 0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_published_port_reaches_busybox_httpd(podman):
    def scenario(run):
        port = free_port()
        r = run("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www")
        assert r.returncode == 0, r.stderr
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body, deadline = None, time.monotonic() + 15
        while body is None:
            try:
                body = opener.open(f"http://127.0.0.1:{port}/index.html", timeout=5).read()
            except OSError:
                assert time.monotonic() < deadline, "httpd never answered"
                time.sleep(0.2)
        run("rm", "-f", "web")
        return body
    assert both(podman, scenario) == b"hello-web\n"


def test_interactive_terminal_under_a_real_pty(podman):
    """``podman run -it``: conmon gets the pty master over --console-socket and relays
    it; ``script`` gives podman a real terminal."""
    if not shutil.which("script"):
        pytest.skip("script is not installed (apt-get install bsdutils)")
    results = {}
    for runtime in RUNTIMES:
        cmd = " ".join(podman.cmd(*runtime_args(podman, runtime), "run", "-it", "--rm", IMAGE, "sh"))
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], input="echo in-$((6*7)); tty; exit 5\n",
                           capture_output=True, text=True, env=podman.env, timeout=60)
        results[runtime] = (r.returncode, "/ # " in r.stdout, "in-42" in r.stdout,
                            "/dev/pts/0" in r.stdout)
    assert results["minidocker-runtime"] == results["runc"] == (5, True, True, True)


def test_failed_create_is_reported_and_leaves_nothing(podman):
    """A create that fails half-way: podman shows the runtime's one-line message (read
    from the json log), and neither the runtime's state nor the cgroup stays."""
    parent = "/sys/fs/cgroup/memory/libpod_parent" if os.path.isdir("/sys/fs/cgroup/memory") \
        else "/sys/fs/cgroup/libpod_parent"

    def groups():
        return set(os.listdir(parent)) if os.path.isdir(parent) else set()
    before = groups()
    # podman checks the working directory itself; a sysctl only the runtime writes
    r = podman.run(*runtime_args(podman, "minidocker-runtime"), "create", "--name", "bad",
                   "--sysctl", "net.ipv4.no_such_knob=1", IMAGE, "true")
    cid = r.stdout.strip()
    r = podman.run(*runtime_args(podman, "minidocker-runtime"), "start", "bad", check=False)
    assert r.returncode != 0
    assert "create failed: container setup failed:" in r.stderr, r.stderr
    assert "/proc/sys/net/ipv4/no_such_knob" in r.stderr
    assert "time=" not in r.stderr       # the message itself, from the json log
    assert not state_left("minidocker-runtime", [cid])
    assert f"libpod-{cid}" not in groups() - before
    podman.run("rm", "-f", "bad", check=False)
