"""Bad input and faults, sent raw over the service's socket: each gets a clean answer or
is dropped, the service keeps serving the others, and the store is never left half
written."""

from __future__ import annotations

import json
import socket
import time

from helpers_api import api  # noqa: F401  (fixture)


def _raw(api, data: bytes, read=True, timeout=10) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(api.sock)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"Content-Length: " in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return out
    finally:
        s.close()


def _ping_ok(api) -> bool:
    status, headers, body = api.request("GET", "/_ping")
    return status == 200 and body == b"OK"


def _containers(api) -> list:
    return api.minidocker("ps", "-aq").stdout.split()


def test_versions_and_unknown_endpoints(api):
    status, headers, body = api.request("GET", "/v1.42/version")
    assert status == 400 and json.loads(body)["message"] == \
        "client version 1.42 is too new. Maximum supported API version is 1.41"
    assert headers["Content-Type"] == "application/json"
    status, _, body = api.request("GET", "/v1.23/containers/json")
    assert status == 400 and "client version 1.23 is too old" in json.loads(body)["message"]
    for path in ("/v1.41/version", "/version", "/v1.24/version"):
        status, headers, body = api.request("GET", path)
        assert status == 200 and json.loads(body)["ApiVersion"] == "1.41"
    status, headers, _ = api.request("HEAD", "/_ping")
    assert status == 200 and headers["Api-Version"] == "1.41" and headers["Ostype"] == "linux"
    assert "Builder-Version" not in headers and headers["Server"].startswith("minidocker/")
    status, _, body = api.request("GET", "/v1.41/no/such/endpoint")
    assert (status, json.loads(body)) == (404, {"message": "page not found"})
    status, _, body = api.request("GET", "/containers/nosuch/json")
    assert (status, json.loads(body)) == (404, {"message": "No such container: nosuch"})


def test_malformed_and_wrongly_typed_bodies(api):
    status, _, body = api.request("POST", "/containers/create", b"{not json",
                                  {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["message"].startswith("invalid JSON")
    status, _, body = api.request("POST", "/containers/create", {"Image": "busybox", "Cmd": 5})
    assert status == 400 and "Cmd" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/containers/create",
                                  {"Image": "busybox", "HostConfig": {"Memory": "lots"}})
    assert status == 400 and "HostConfig.Memory" in json.loads(body)["message"]
    status, _, body = api.request("POST", "/containers/create", [1, 2])
    assert status == 400
    status, _, body = api.request("POST", "/containers/create?name=bad/name",
                                  {"Image": "busybox", "Cmd": ["true"]})
    assert status == 400 and "Invalid container name" in json.loads(body)["message"]
    status, _, body = api.request("GET", "/containers/json?all=maybe")
    assert status == 400
    status, _, body = api.request("GET", "/containers/json?filters=%7Bnope")
    assert status == 400
    status, _, body = api.request("GET", '/containers/json?filters={"label":{"a=b":true}}'
                                  .replace('"', "%22").replace("{", "%7B").replace("}", "%7D"))
    assert status == 200 and json.loads(body) == []
    assert _containers(api) == [] and _ping_ok(api)


def test_name_conflict_is_409(api):
    status, _, body = api.request("POST", "/containers/create?name=twice",
                                  {"Image": "busybox", "Cmd": ["true"]})
    assert status == 201
    try:
        status, _, body = api.request("POST", "/containers/create?name=twice",
                                      {"Image": "busybox", "Cmd": ["true"]})
        assert status == 409 and 'The container name "/twice" is already in use' in \
            json.loads(body)["message"]
    finally:
        api.minidocker("rm", "-f", "twice")


def test_huge_and_truncated_bodies(api):
    # announced as 10 GB: refused without reading it, the connection closed
    reply = _raw(api, b"POST /containers/create HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{")
    assert reply.startswith(b"HTTP/1.1 413")
    # a body that stops half way and a client that goes away: nothing is created
    _raw(api, b"POST /containers/create?name=half HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
              b'{"Image": "busybox", "Cmd": ["tr', read=False)
    # a malformed request line, a header without a colon
    assert _raw(api, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert _raw(api, b"GET /_ping HTTP/1.1\r\nno colon here\r\n\r\n").startswith(b"HTTP/1.1 400")
    # a bad chunked body
    assert b" 400 " in _raw(api, b"POST /containers/create HTTP/1.1\r\nHost: x\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    time.sleep(0.5)
    assert _containers(api) == [] and _ping_ok(api)


def test_a_hundred_idle_connections_do_not_stop_the_service(api):
    idle = []
    try:
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX)
            s.connect(api.sock)
            idle.append(s)
        # half a request on some of them
        for s in idle[:20]:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost:")
        start = time.monotonic()
        assert _ping_ok(api)
        status, _, body = api.request("GET", "/containers/json?all=1")
        assert status == 200 and json.loads(body) == []
        assert time.monotonic() - start < 5
        assert api.out("version", "--format", "{{.Server.APIVersion}}").strip() == "1.41"
    finally:
        for s in idle:
            s.close()


def test_clients_that_vanish_mid_stream_and_mid_attach(api):
    cid = api.minidocker("run", "-d", "--name", "chatty", "busybox", "sh", "-c",
                         "while true; do echo tick; sleep 0.05; done").stdout.strip()
    try:
        for path in (f"/containers/{cid}/logs?follow=1&stdout=1",
                     f"/containers/{cid}/stats",
                     f"/containers/{cid}/wait"):
            s = socket.socket(socket.AF_UNIX)
            s.connect(api.sock)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                      if "wait" not in path else
                      f"POST {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.settimeout(10)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            s.close()
        # an attach, hijacked, whose client is gone at once
        s = socket.socket(socket.AF_UNIX)
        s.connect(api.sock)
        s.sendall(f"POST /containers/{cid}/attach?stream=1&stdout=1&stdin=1 HTTP/1.1\r\n"
                  "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())
        s.settimeout(10)
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        s.close()
        time.sleep(1)
        # the container and the service go on
        assert api.out("inspect", "-f", "{{.State.Running}}", "chatty").strip() == "true"
        assert _ping_ok(api)
        assert "tick" in api.out("logs", "--tail", "1", "chatty")
        # the service has no thread left for the streams of the gone clients
        deadline = time.monotonic() + 10
        while True:
            threads = _service_threads(api)
            if threads <= 3:
                break
            assert time.monotonic() < deadline, f"{threads} threads left\n{api.log()}"
            time.sleep(0.2)
    finally:
        api.minidocker("rm", "-f", "chatty")


def _service_threads(api) -> int:
    with open(f"/proc/{api.proc.pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0
