"""Credentials and registry settings (Docker's config.json), and how a registry is spoken to."""

from __future__ import annotations

import json

import pytest

from helpers_registry import embedded
from minidocker.errors import MinidockerError
from minidocker.registry import auth
from minidocker.registry.transport import Registry


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(path))
    return path


def test_credentials_round_trip_in_docker_format(config):
    auth.save_credentials("registry.lab:5000", "alice", "pa:ss")
    auth.save_credentials("docker.io", "john1", "x")
    saved = json.loads(config.read_text())
    assert saved["auths"]["registry.lab:5000"] == {"auth": "YWxpY2U6cGE6c3M="}   # alice:pa:ss
    assert "https://index.docker.io/v1/" in saved["auths"]          # Docker Hub's key
    assert auth.get_credentials("registry.lab:5000") == ("alice", "pa:ss")
    assert auth.get_credentials("docker.io") == ("john1", "x")
    assert auth.remove_credentials("registry.lab:5000") is True
    assert auth.remove_credentials("registry.lab:5000") is False
    assert auth.get_credentials("registry.lab:5000") is None


def test_config_directory_like_docker_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(tmp_path))
    assert auth.config_path() == str(tmp_path / "config.json")


def test_https_unless_loopback_or_listed_insecure(config):
    assert Registry("registry.lab:5000").scheme == "https"
    assert Registry("127.0.0.1:5000").scheme == "http"
    assert Registry("localhost:5000").scheme == "http"
    config.write_text(json.dumps({"insecure-registries": ["registry.lab:5000"]}))
    assert Registry("registry.lab:5000").scheme == "http"
    assert Registry("other.lab").scheme == "https"


def test_challenge_parsing():
    assert auth.parse_challenge('Bearer realm="https://auth.docker.io/token",'
                                'service="registry.docker.io",scope="repository:a/b:pull,push"') == (
        "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                   "scope": "repository:a/b:pull,push"})
    assert auth.parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_tls_to_a_plain_http_registry_is_a_clear_error(tmp_path, config):
    with embedded(tmp_path) as reg:
        with pytest.raises(MinidockerError, match="TLS error .*insecure-registries"):
            Registry(reg.host, scheme="https").login()


def test_nothing_listening_is_a_clear_error(config):
    from helpers_registry import free_port
    with pytest.raises(MinidockerError, match="cannot reach the registry: Connection refused"):
        Registry(f"127.0.0.1:{free_port()}").login()
