"""Credentials and registry configuration, in Docker's ``config.json`` format.

``minidocker login`` stores what ``docker login`` stores, in the same shape::

    {
      "auths": {
        "localhost:5000": {"auth": "<base64 of user:password>"}
      },
      "insecure-registries": ["myregistry.lab:5000"]
    }

The file is ``$MINIDOCKER_CONFIG`` (a file, or a directory holding ``config.json`` as
``$DOCKER_CONFIG`` is), else ``~/.minidocker/config.json``. It is written with mode
0600: ``auth`` is only base64, not encryption (Docker's credential helpers exist for
that reason). ``insecure-registries`` is what Docker keeps in ``daemon.json``: those
registries are spoken to in plain HTTP.

This module also parses the ``WWW-Authenticate`` challenge a registry answers with
(RFC 7235): ``Basic realm="..."`` or ``Bearer realm="...",service="...",scope="..."``.
"""

from __future__ import annotations

import base64
import json
import os
import re

from .. import paths
from ..errors import InvalidInput

#: the key Docker uses for Docker Hub in config.json
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> str:
    env = os.environ.get("MINIDOCKER_CONFIG")
    if env:
        return os.path.join(env, "config.json") if os.path.isdir(env) else env
    return os.path.join(os.path.expanduser("~"), ".minidocker", "config.json")


def load_config() -> dict:
    try:
        with open(config_path()) as f:
            config = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise InvalidInput(f"{config_path()}: not valid JSON ({e})") from None
    return config if isinstance(config, dict) else {}


def save_config(config: dict) -> None:
    path = config_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    paths.write_atomic(path, json.dumps(config, indent="\t") + "\n", mode=0o600)


def config_key(registry: str) -> str:
    """``docker.io`` is stored under Docker Hub's historical key; others by host[:port]."""
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY):
        return DOCKER_HUB_KEY
    return registry


def get_credentials(registry: str) -> tuple[str, str] | None:
    """``(user, password)`` saved for ``registry``, or None."""
    entry = load_config().get("auths", {}).get(config_key(registry))
    if not entry:
        return None
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    try:
        user, sep, password = base64.b64decode(entry.get("auth", "")).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{config_path()}: bad 'auth' entry for {registry}") from None
    return (user, password) if sep else None


def save_credentials(registry: str, user: str, password: str) -> None:
    config = load_config()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.setdefault("auths", {})[config_key(registry)] = {"auth": token}
    save_config(config)


def remove_credentials(registry: str) -> bool:
    """Forget ``registry``'s credentials; False if there were none."""
    config = load_config()
    if config.get("auths", {}).pop(config_key(registry), None) is None:
        return False
    save_config(config)
    return True


def insecure_registries() -> list[str]:
    return list(load_config().get("insecure-registries", []))


def is_insecure(host: str) -> bool:
    """Plain HTTP for this registry? Loopback always (as Docker treats 127.0.0.0/8 and
    localhost), otherwise only when the config lists it."""
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if hostname in ("localhost", "[::1]", "::1") or hostname.startswith("127."):
        return True
    return host in insecure_registries() or hostname in insecure_registries()


# --------------------------------------------------------------------------- challenges
_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict]:
    """``'Bearer realm="https://a/token",service="reg",scope="repository:x:pull"'``
    -> ``("bearer", {"realm": ..., "service": ..., "scope": ...})``."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params
