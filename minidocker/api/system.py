"""``/_ping`` and ``/version``: how a client learns whom it talks to.

Every Docker client starts with ``/_ping`` (``HEAD`` or ``GET``): the answer's headers
say which API version the daemon speaks (``API-Version``), its OS (``OSType``), whether
it is experimental, and which builder it prefers. A client newer than the daemon then
*negotiates down*: it puts the daemon's version in front of every path
(``/v1.41/containers/json``). minidocker sends no ``Builder-Version`` header, which
means the classic builder: ``docker build`` sends its context as a tar to
``POST /build`` (BuildKit's session protocol would be a different world).
"""

from __future__ import annotations

import os
import platform
import sys

from .. import __version__
from .http import json_response, text_response
from .router import API_VERSION, MIN_API_VERSION, route


def _ping_headers() -> dict:
    return {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


@route("GET", "/_ping")
def ping(req):
    return text_response("OK", headers=_ping_headers())


@route("HEAD", "/_ping")
def ping_head(req):
    # moby: a HEAD answer says Content-Length: 0 (a GET's would be 2)
    return text_response("", headers=_ping_headers())


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def version_info() -> dict:
    """``docker version``'s "Server" part (moby's ``types.Version``)."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
               "Arch": _arch(), "KernelVersion": os.uname().release, "GitCommit": "",
               "GoVersion": python, "BuildTime": "", "Experimental": "false"}
    return {
        "Platform": {"Name": "minidocker"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": python, "Os": "linux", "Arch": _arch(),
        "KernelVersion": os.uname().release, "BuildTime": "", "Experimental": False,
    }


@route("GET", "/version")
def version(req):
    return json_response(version_info())
