"""Routes: which handler answers which ``METHOD /path``, and the API version in the path.

A handler module registers its routes when it is imported::

    @route("POST", "/containers/{id}/start")
    def start(req):
        ...req.params["id"]...

``{name}`` matches one path segment; ``{name:path}`` matches one or more (image names
hold slashes: ``/images/localhost:5000/team/app/json``).

Docker's clients put the API version they speak in front of the path
(``/v1.41/containers/json``); a path without it means "the newest". The daemon refuses
a version it does not speak: above its own (1.41 here) or below its minimum (1.24):
that is moby's version middleware, with its wording.
"""

from __future__ import annotations

import re

from .http import ApiError

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


class Route:
    def __init__(self, method: str, pattern: str, handler):
        self.method = method
        self.pattern = pattern
        self.handler = handler
        regex = ""
        for part in re.split(r"(\{[a-zA-Z_]+(?::path)?\})", pattern):
            if part.startswith("{"):
                name, _, kind = part[1:-1].partition(":")
                regex += f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)"
            else:
                regex += re.escape(part)
        self.regex = re.compile("^" + regex + "/?$")
        # literal routes win over parameterised ones: "/images/json" before
        # "/images/{name:path}" (more literal characters = more specific)
        self.specificity = len(re.sub(r"\{[^}]*\}", "", pattern))


ROUTES: list[Route] = []


def route(method: str, pattern: str):
    """Decorator: ``handler(req)`` answers ``method pattern``."""
    def register(fn):
        ROUTES.append(Route(method.upper(), pattern, fn))
        ROUTES.sort(key=lambda r: -r.specificity)   # stable: same specificity keeps order
        return fn
    return register


def split_version(path: str) -> tuple[tuple[int, int], str]:
    """``/v1.41/containers/json`` -> ((1, 41), "/containers/json"); checks the version."""
    m = _VERSION_PREFIX.match(path)
    if not m:
        return _version_tuple(API_VERSION), path
    version = (int(m.group(1)), int(m.group(2)))
    asked = f"{m.group(1)}.{m.group(2)}"
    if version > _version_tuple(API_VERSION):
        raise ApiError(400, f"client version {asked} is too new. Maximum supported API "
                            f"version is {API_VERSION}")
    if version < _version_tuple(MIN_API_VERSION):
        raise ApiError(400, f"client version {asked} is too old. Minimum supported API "
                            f"version is {MIN_API_VERSION}, please upgrade your client to "
                            f"a newer version")
    return version, m.group(3)


def match(method: str, path: str):
    """(handler, params) for ``method path``; 404 "page not found" when no route has the
    path (Docker's wording), 405 when some route has it with another method."""
    path_known = False
    for r in ROUTES:
        m = r.regex.match(path)
        if not m:
            continue
        # HEAD is answered by a GET handler unless a HEAD route exists
        if r.method == method or (method == "HEAD" and r.method == "GET" and
                                  not any(o.method == "HEAD" and o.regex.match(path)
                                          for o in ROUTES)):
            return r.handler, m.groupdict()
        path_known = True
    if path_known:
        raise ApiError(405, "method not allowed")
    raise ApiError(404, "page not found")
