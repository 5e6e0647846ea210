"""docker-compose 1.29 (Debian's, unchanged) against minidocker's Engine API: a
two-service project (one built from a Dockerfile, one from an image) on a user network
where they find each other by name, with a named volume, a published port and
``depends_on``; ``up -d``, ``ps``, ``logs``, ``down -v``, the attached ``up`` that
follows ``/events`` and stops on Ctrl-C, and a build through the docker CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from helpers_api import COMPOSE, api  # noqa: F401  (fixture)
from helpers_registry import free_port

COMPOSE_FILE = """\
version: "3.7"
services:
  web:
    build: ./web
    ports:
      - "127.0.0.1:{port}:80"
    depends_on:
      - db
    networks: [back]
    stop_grace_period: 1s
  db:
    image: busybox
    command: ["sh", "-c", "echo db-says-hi > /data/index.html; echo db ready; exec httpd -f -p 8000 -h /data"]
    volumes:
      - data:/data
    networks: [back]
    stop_grace_period: 1s
networks:
  back: {{}}
volumes:
  data: {{}}
"""

WEB_DOCKERFILE = """\
FROM busybox
RUN mkdir /www
# the page comes from the db service, found by its name on the project's network
CMD ["sh", "-c", "until wget -qO /www/index.html http://db:8000/; do sleep 0.2; done; echo web ready; exec httpd -f -p 80 -h /www"]
"""


def _unpublished_port() -> int:
    """A free loopback port that no DNAT rule on this machine already claims (other
    data roots may publish on 0.0.0.0)."""
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    while True:
        port = free_port()
        if f"--dport {port} " not in rules:
            return port


@pytest.fixture
def project(api, tmp_path):
    if not os.path.exists(COMPOSE):
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    port = _unpublished_port()
    directory = tmp_path / "proj"
    (directory / "web").mkdir(parents=True)
    (directory / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    (directory / "docker-compose.yml").write_text(COMPOSE_FILE.format(port=port))
    name = f"mdc{os.getpid()}"

    def compose(*args, timeout=180, env=None, check=True):
        r = subprocess.run([COMPOSE, "-p", name, *args], cwd=directory, capture_output=True,
                           text=True, timeout=timeout, env={**api.env, **(env or {})})
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} -> {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}\n--- service log:\n{api.log()}")
        return r
    compose.name, compose.port, compose.dir = name, port, directory
    try:
        yield compose
    finally:
        compose("down", "-v", "--rmi", "local", check=False)


def _get(port: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_up_ps_logs_down(api, project):
    name = project.name
    r = project("up", "-d")
    assert f"Creating {name}_db_1" in r.stderr and f"Creating {name}_web_1" in r.stderr
    # the built image, the network, the volume: all minidocker's own
    assert f"{name}_web" in api.minidocker("images", "--format", "{{.Repository}}").stdout
    assert f"{name}_back" in api.minidocker("network", "ls").stdout
    assert f"{name}_data" in api.minidocker("volume", "ls", "-q").stdout.split()
    assert _get(project.port) == "db-says-hi\n"
    ps = project("ps").stdout
    assert f"{name}_web_1" in ps and f"127.0.0.1:{project.port}->80/tcp" in ps
    assert ps.count(" Up ") == 2
    assert sorted(project("ps", "-q").stdout.split()) == sorted(
        api.minidocker("ps", "-q", "--no-trunc").stdout.split())
    deadline = time.monotonic() + 20
    while "web ready" not in (logs := project("logs", "--no-color").stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.3)
    assert "db ready" in logs
    # up again: nothing to do
    r = project("up", "-d")
    assert f"{name}_web_1 is up-to-date" in r.stderr
    r = project("down", "-v")
    assert f"Removing network {name}_back" in r.stderr and f"Removing volume {name}_data" in r.stderr
    assert api.minidocker("ps", "-aq").stdout == ""
    assert f"{name}_data" not in api.minidocker("volume", "ls", "-q").stdout
    assert f"{name}_back" not in api.minidocker("network", "ls").stdout


def test_attached_up_follows_events_and_stops_on_ctrl_c(api, project):
    # unbuffered: compose's lines reach us as it prints them; a thread collects them,
    # so that a line that never comes fails the test instead of hanging it
    proc = subprocess.Popen([COMPOSE, "-p", project.name, "up", "--no-color"], cwd=project.dir,
                            env={**api.env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")))
    reader.start()

    def wait_for(text, timeout=120):
        deadline = time.monotonic() + timeout
        while not any(line.rstrip("\n").endswith(text) for line in list(out)):
            assert time.monotonic() < deadline and proc.poll() is None, \
                f"no line ending with {text!r}:\n" + "".join(out) + api.log()[-1500:]
            time.sleep(0.1)
    try:
        wait_for("| web ready")
        wait_for("| db ready")
        assert _get(project.port) == "db-says-hi\n"
        # the db dies: compose learns it (its log stream ends, /events says "die")
        api.minidocker("kill", f"{project.name}_db_1")
        wait_for(f"{project.name}_db_1 exited with code 137")
        proc.send_signal(signal.SIGINT)              # Ctrl-C
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    text = "".join(out)
    assert "Attaching to" in text
    assert "Gracefully stopping..." in text and f"Stopping {project.name}_web_1" in text
    states = api.minidocker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert f"{project.name}_web_1 Exited" in states


def test_build_through_the_docker_cli(api, project):
    """By default compose 1.29 builds by running ``docker build`` (the CLI found on PATH,
    here the 20.10 one) rather than through docker-py."""
    path = "/usr/bin:" + os.environ.get("PATH", "")
    r = project("build", env={"COMPOSE_DOCKER_CLI_BUILD": "1", "PATH": path})
    assert "Step 1/3 : FROM busybox" in r.stdout + r.stderr
    assert f"Successfully tagged {project.name}_web:latest" in r.stdout + r.stderr
    assert shutil.which("docker", path=path) == "/usr/bin/docker"
