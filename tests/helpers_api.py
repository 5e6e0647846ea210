"""The Engine API under test: ``minidocker system service`` on a unix socket in a temp
dir, over a data root of its own with busybox bootstrapped, and the unchanged clients
pointed at it (``/usr/bin/docker`` 20.10 by path, docker-compose 1.29, docker-py on
``/usr/bin/python3``).

The clients get a ``DOCKER_CONFIG`` of their own (no credentials or contexts of the
machine's user leak in) and ``DOCKER_BUILDKIT=0`` (the classic ``POST /build``). When
the fixture ends, every container of the data root is removed and the service stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import IS_ROOT

DOCKER = "/usr/bin/docker"
COMPOSE = "/usr/bin/docker-compose"
SYSTEM_PYTHON = "/usr/bin/python3"


class Service:
    """A running ``minidocker system service`` and helpers to talk to it."""

    def __init__(self, base: str):
        self.base = base
        self.root = os.path.join(base, "root")
        self.sock = os.path.join(base, "d.sock")
        self.config = os.path.join(base, "docker-config")
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.config, exist_ok=True)
        self.log_path = os.path.join(base, "service.log")
        self.proc = None

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def env(self) -> dict:
        """The environment of a client: the service's socket, a private config."""
        return dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=self.config,
                    DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0",
                    MINIDOCKER_ROOT=self.root)

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minidocker", "system", "service", "-H", self.host, "-D"],
            env=dict(os.environ, MINIDOCKER_ROOT=self.root), stdout=log, stderr=log,
            stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited: {self.log()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"the service did not listen on {self.sock}: {self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # -- clients
    def docker(self, *args, input=None, timeout=120, check=False, env=None, cwd=None):
        r = subprocess.run([DOCKER, *map(str, args)], input=input, capture_output=True,
                           text=not isinstance(input, bytes), timeout=timeout,
                           env={**self.env, **(env or {})}, cwd=cwd)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} -> {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}\n--- service log:\n{self.log()}")
        return r

    def out(self, *args, **kw) -> str:
        return self.docker(*args, check=True, **kw).stdout

    def minidocker(self, *args, timeout=120, check=True):
        r = subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)],
                           capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, MINIDOCKER_ROOT=self.root))
        if check and r.returncode != 0:
            raise AssertionError(f"minidocker {' '.join(map(str, args))} -> {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def python(self, code: str, timeout=180):
        """Run ``code`` with the system's python3 (docker-py 5 from Debian) against the
        service; returns the CompletedProcess."""
        return subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env=self.env)

    def request(self, method: str, path: str, body=None, headers=None):
        """A raw request over the socket (``http.client``): (status, headers, bytes)."""
        import http.client

        class Conn(http.client.HTTPConnection):
            def connect(conn):
                conn.sock = socket.socket(socket.AF_UNIX)
                conn.sock.settimeout(60)
                conn.sock.connect(self.sock)
        c = Conn("localhost")
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def cleanup(self) -> None:
        """Remove every container of the data root (the tests' ``docker rm -f``)."""
        r = self.minidocker("ps", "-aq", "--no-trunc", check=False)
        ids = r.stdout.split()
        if ids:
            self.minidocker("rm", "-f", *ids, check=False)


def _skip_unless_clients():
    if not IS_ROOT:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI 20.10 is not installed (apt-get install docker.io)")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A service over a fresh data root with ``busybox:latest``, for one test module."""
    _skip_unless_clients()
    base = str(tmp_path_factory.mktemp("api"))
    service = Service(base)
    r = service.minidocker("bootstrap", "busybox", timeout=120, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot bootstrap busybox: {r.stderr.strip()}")
    service.start()
    try:
        yield service
    finally:
        service.cleanup()
        service.stop()
        shutil.rmtree(service.config, ignore_errors=True)
