"""Containers through the Engine API, driven by the unchanged docker CLI 20.10
(``/usr/bin/docker``) and docker-py 5 (Debian's ``python3-docker``, run by
``/usr/bin/python3``: the version the issue names, and no download in CI), checked
against what the container printed, what a peer (curl) reads back and what
``minidocker``'s own CLI sees in the same data root."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import socket
import struct
import subprocess
import termios
import time
import urllib.request

import pytest

from helpers_api import DOCKER, SYSTEM_PYTHON, api  # noqa: F401  (fixture)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _names(api, *args) -> list[str]:
    return api.out("ps", *args, "--format", "{{.Names}}").split()


def test_run_rm_prints_and_exits_with_the_command_s_code(api):
    r = api.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert api.docker("run", "--rm", "busybox", "echo", "hi").stdout == "hi\n"
    # --rm: nothing left, for either CLI
    assert api.out("ps", "-aq") == ""
    assert api.minidocker("ps", "-aq").stdout == ""


def test_run_of_a_missing_image_says_so(api):
    r = api.docker("run", "--rm", "--pull", "never", "nosuchimage:1")
    assert r.returncode == 125 and "No such image: nosuchimage:1" in r.stderr
    status, _, body = api.request("POST", "/v1.41/containers/create", {"Image": "nosuchimage"})
    assert status == 404 and json.loads(body) == {"message": "No such image: nosuchimage:latest"}


def test_run_it_under_a_real_pty(api):
    """``docker run -it``: the prompt, the window size (stty size), Ctrl-C, exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 37, 111, 0, 0))
    proc = subprocess.Popen([DOCKER, "run", "-it", "--rm", "busybox", "sh"], stdin=slave,
                            stdout=slave, stderr=slave, env=api.env, start_new_session=True)
    os.close(slave)
    seen = bytearray()

    def expect(text: bytes, timeout=20):
        deadline = time.monotonic() + timeout
        while text not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in {bytes(seen)!r}\n{api.log()}"
            if select.select([master], [], [], left)[0]:
                try:
                    seen.extend(os.read(master, 4096))
                except OSError:
                    break
        assert text in seen, bytes(seen)
    try:
        expect(b"/ # ")
        os.write(master, b"stty size\r")
        expect(b"37 111")
        os.write(master, b"sleep 60; echo not-interrupted\r")
        time.sleep(0.5)
        os.write(master, b"\x03")            # Ctrl-C: SIGINT for the container's sleep
        expect(b"^C")
        seen.clear()
        os.write(master, b"echo back-$((40+2))\r")
        expect(b"back-42")
        assert b"not-interrupted" not in seen
        os.write(master, b"exit 7\r")
        assert proc.wait(20) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert api.out("ps", "-aq") == ""


def test_run_i_pipes_stdin_through_attach(api):
    r = api.docker("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; echo done",
                   input="hello from stdin\n")
    assert (r.returncode, r.stdout) == (0, "HELLO FROM STDIN\ndone\n")


def test_run_detached_with_a_published_port(api):
    port = _free_port()
    cid = api.out("run", "-d", "--name", "web", "-p", f"{port}:80", "-l", "role=web",
                  "busybox", "sh", "-c", "echo served > /index.html; httpd -f -p 80 -h /").strip()
    try:
        assert len(cid) == 64
        deadline = time.monotonic() + 15
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, api.log()
                time.sleep(0.2)
        assert body == b"served\n"
        assert api.out("port", "web").strip() == f"80/tcp -> 0.0.0.0:{port}"
        # the API's container is minidocker's, and the reverse
        assert "web" in api.minidocker("ps", "--format", "{{.Names}}").stdout.split()
        api.minidocker("run", "-d", "--name", "fromcli", "-l", "role=cli", "busybox", "sleep", "300")
        assert set(_names(api)) >= {"web", "fromcli"}
        assert _names(api, "--filter", "label=role=web") == ["web"]
        assert _names(api, "--filter", "label=role=cli") == ["fromcli"]
        assert api.out("ps", "-q", "--filter", "name=web").strip() == cid[:12]
        doc = json.loads(api.out("inspect", "web"))[0]
        assert doc["Name"] == "/web" and doc["State"]["Running"] and doc["State"]["Pid"] > 0
        assert doc["Config"]["Labels"] == {"role": "web"}
        assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        assert doc["NetworkSettings"]["IPAddress"].startswith("172.")
        assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    finally:
        api.docker("rm", "-f", "web", "fromcli")
    assert api.out("ps", "-aq") == ""


def test_logs_follow_and_tail(api):
    api.out("run", "-d", "--name", "talker", "busybox", "sh", "-c",
            "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.3; echo err1 >&2; sleep 2; echo last")
    try:
        deadline = time.monotonic() + 10
        while "err1" not in api.docker("logs", "talker").stderr:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = api.docker("logs", "--tail", "2", "talker")
        assert r.stdout == "line5\n" and r.stderr == "err1\n"
        r = api.docker("logs", "-f", "talker", timeout=30)    # ends when the container does
        assert r.returncode == 0 and r.stdout.splitlines() == [*(f"line{i}" for i in range(1, 6)), "last"]
        assert r.stderr.splitlines() == ["err1"]
        stamped = api.out("logs", "-t", "--tail", "1", "talker")
        assert stamped.endswith(" last\n") and stamped[:4].isdigit()
    finally:
        api.docker("rm", "-f", "talker")


def test_exec_exit_codes_and_exec_it(api):
    api.out("run", "-d", "--name", "box", "busybox", "sleep", "300")
    try:
        r = api.docker("exec", "box", "sh", "-c", "echo in-$HOSTNAME; exit 4")
        assert r.returncode == 4 and r.stdout.startswith("in-")
        r = api.docker("exec", "-e", "X=1", "-w", "/etc", "box", "sh", "-c", "echo $X $(pwd)")
        assert r.stdout == "1 /etc\n"
        assert api.docker("exec", "box", "nosuchcmd").returncode == 127
        r = api.docker("exec", "-i", "box", "cat", input="piped\n")
        assert r.stdout == "piped\n"
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 21, 77, 0, 0))
        proc = subprocess.Popen([DOCKER, "exec", "-it", "box", "sh", "-c",
                                 "sleep 0.5; stty size; tty; exit 5"],
                                stdin=slave, stdout=slave, stderr=slave, env=api.env,
                                start_new_session=True)
        os.close(slave)
        out = bytearray()
        try:
            while proc.poll() is None or select.select([master], [], [], 0.2)[0]:
                if select.select([master], [], [], 0.2)[0]:
                    try:
                        out += os.read(master, 4096)
                    except OSError:
                        break
            assert proc.wait(20) == 5
        finally:
            os.close(master)
        assert b"21 77" in out and b"/dev/pts/" in out
    finally:
        api.docker("rm", "-f", "box")


def test_stop_kill_start_restart_wait_rm(api):
    api.out("run", "-d", "--name", "life", "busybox", "sh", "-c",
            "trap 'echo got-term; exit 12' TERM; while true; do sleep 0.1; done")
    try:
        time.sleep(0.3)
        assert api.out("stop", "-t", "5", "life").strip() == "life"
        assert api.out("wait", "life").strip() == "12"
        assert "got-term" in api.out("logs", "life")
        assert api.out("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "life").split() == ["exited", "12"]
        api.out("start", "life")
        assert api.out("inspect", "-f", "{{.State.Running}}", "life").strip() == "true"
        api.out("kill", "life")
        assert api.out("wait", "life").strip() == "137"
        r = api.docker("kill", "life")
        assert r.returncode == 1 and "is not running" in r.stderr
        api.out("restart", "-t", "1", "life")
        doc = json.loads(api.out("inspect", "life"))[0]
        assert doc["State"]["Running"] and doc["RestartCount"] == 1
        r = api.docker("rm", "life")
        assert r.returncode == 1 and "You cannot remove a running container" in r.stderr
        assert api.out("rm", "-f", "-v", "life").strip() == "life"
        r = api.docker("inspect", "life")
        assert r.returncode == 1 and "No such object: life" in r.stderr
    finally:
        api.docker("rm", "-f", "life")


def test_top_diff_commit_rename_cp_pause_stats(api, tmp_path):
    api.out("run", "-d", "--name", "work", "busybox", "sh", "-c",
            "echo data > /created.txt; rm /etc/group; sleep 300")
    try:
        time.sleep(0.5)
        top = api.out("top", "work").splitlines()
        assert top[0].split()[:2] == ["UID", "PID"] and "sleep 300" in top[-1]
        assert api.out("top", "work", "-o", "pid,comm").splitlines()[0].split() == ["PID", "COMMAND"]
        diff = api.out("diff", "work").splitlines()
        assert "A /created.txt" in diff and "D /etc/group" in diff and "C /etc" in diff
        image_id = api.out("commit", "-c", "CMD cat /created.txt", "work", "committed:1").strip()
        assert image_id.startswith("sha256:")
        assert api.out("run", "--rm", "committed:1") == "data\n"
        assert api.out("rename", "work", "renamed") == ""
        assert _names(api) == ["renamed"]
        assert api.minidocker("ps", "--format", "{{.Names}}").stdout.split() == ["renamed"]
        # cp both ways, a file and a directory
        src = tmp_path / "in.txt"
        src.write_text("from the host\n")
        api.out("cp", str(src), "renamed:/tmp/")
        assert api.out("exec", "renamed", "cat", "/tmp/in.txt") == "from the host\n"
        api.out("cp", str(src), "renamed:/tmp/renamed-copy.txt")
        assert api.out("exec", "renamed", "cat", "/tmp/renamed-copy.txt") == "from the host\n"
        api.out("cp", "renamed:/created.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "data\n"
        api.out("cp", "renamed:/etc", str(tmp_path / "etc-copy"))
        assert (tmp_path / "etc-copy" / "passwd").read_text().startswith("root:")
        r = api.docker("cp", "renamed:/no/such", str(tmp_path))
        assert r.returncode == 1 and "No such container:path: renamed:/no/such" in r.stderr
        # pause / unpause: the freezer
        api.out("pause", "renamed")
        assert api.out("ps", "--format", "{{.Status}}").strip().endswith("(Paused)")
        assert "(Paused)" in api.minidocker("ps").stdout
        assert api.out("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "renamed").split() == ["paused", "true"]
        r = api.docker("exec", "renamed", "true")
        assert r.returncode != 0 and "paused" in r.stderr
        api.out("unpause", "renamed")
        assert api.out("exec", "renamed", "echo", "thawed") == "thawed\n"
        # stats --no-stream: the cgroup's counters, sane
        line = api.out("stats", "--no-stream", "--format",
                       "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "renamed").strip()
        name, cpu, mem, pids = line.split("|")
        assert name == "renamed" and cpu.endswith("%") and int(pids) >= 1
        used, limit = mem.split(" / ")
        assert used[0].isdigit() and used != "0B" and limit[0].isdigit()
    finally:
        api.docker("rm", "-f", "renamed", "work")
        api.docker("rmi", "committed:1")


def test_wait_conditions_over_the_api(api):
    """``/wait`` sends its headers at once and its body at the exit."""
    cid = api.out("create", "busybox", "sh", "-c", "sleep 1; exit 9").strip()
    try:
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(api.sock)
        conn.sendall(f"POST /v1.41/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\n"
                     "Host: x\r\n\r\n".encode())
        conn.settimeout(5)
        head = conn.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\n\r\n" in head
        api.out("start", cid)
        body = b""
        conn.settimeout(15)
        while b'"StatusCode"' not in body:
            data = conn.recv(4096)
            assert data
            body += data
        assert b'"StatusCode": 9' in body
        conn.close()
        status, _, body = api.request("POST", f"/containers/{cid}/wait")    # not running: at once
        assert status == 200 and json.loads(body)["StatusCode"] == 9
        status, _, body = api.request("POST", f"/containers/{cid}/wait?condition=sometime")
        assert status == 400
    finally:
        api.docker("rm", "-f", cid)


def test_docker_py_run_logs_exec(api):
    code = r"""
import docker, json
c = docker.from_env()
out = c.containers.run("busybox", ["sh", "-c", "echo attached-run"], remove=True)
ctr = c.containers.run("busybox", ["sh", "-c", "echo bg; sleep 300"], detach=True, name="pyctr",
                       labels={"via": "docker-py"}, environment={"GREETING": "hello"})
import time
for _ in range(100):
    if b"bg" in ctr.logs():
        break
    time.sleep(0.1)
res = ctr.exec_run(["sh", "-c", "echo $GREETING; exit 3"])
ctr.reload()
print(json.dumps({"out": out.decode(), "logs": ctr.logs().decode(), "exec_code": res.exit_code,
                  "exec_out": res.output.decode(), "status": ctr.status,
                  "listed": [x.name for x in c.containers.list(filters={"label": "via=docker-py"})]}))
ctr.remove(force=True)
"""
    r = api.python(code)
    if r.returncode != 0 and "No module named 'docker'" in r.stderr:
        pytest.skip("python3-docker is not installed")
    assert r.returncode == 0, r.stderr + api.log()
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"out": "attached-run\n", "logs": "bg\n", "exec_code": 3, "exec_out": "hello\n",
                   "status": "running", "listed": ["pyctr"]}
    assert api.out("ps", "-aq") == ""


def test_run_of_an_image_that_is_not_here_pulls_it(api, tmp_path):
    """The create's 404 "No such image" makes the docker CLI pull (POST /images/create)
    and create again: here from minidocker's own registry on 127.0.0.1."""
    from helpers_registry import embedded
    with embedded(tmp_path) as reg:
        ref = f"{reg.host}/lab/tiny:1"
        api.out("tag", "busybox", ref)
        api.out("push", ref)
        api.out("rmi", ref)
        r = api.docker("run", "--rm", ref, "echo", "pulled and ran")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "pulled and ran\n"
        assert f"Unable to find image '{ref}' locally" in r.stderr
        api.out("rmi", ref)
