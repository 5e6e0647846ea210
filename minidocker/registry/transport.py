"""Talking to one registry over HTTP(S): the ``/v2/`` ping and authentication.

Every conversation starts with ``GET /v2/``. A registry that wants credentials answers
``401`` with a challenge (``WWW-Authenticate``), and that challenge says how to log in
(distribution's "token authentication" spec, RFC 7235):

- ``Basic realm="..."``: send ``Authorization: Basic base64(user:password)`` on every
  request (the embedded registry and Distribution with htpasswd do this);
- ``Bearer realm="https://auth.example/token",service="registry.example"``: ask the
  *token server* at ``realm`` for a token, naming the ``service`` and the ``scope``
  wanted (``repository:john1/cowsay:pull,push``), with Basic credentials if we have
  some (anonymous otherwise: public images). The answer ``{"token": "..."}`` is then
  sent as ``Authorization: Bearer <token>``. Docker Hub works this way.

A token is valid for the scopes it was asked for, so a push (which needs ``pull,push``
on the target, and ``pull`` on the source of a cross-repository mount) asks for all of
them at once.

Networks and registries have bad moments: a connection reset, a proxy's ``502``, a
registry's ``503`` while it restarts. A request that may be sent again without harm
(GET, HEAD, PUT, DELETE, and a POST with no body: opening an upload, a mount) is sent
again after such a failure, a few times, waiting longer each time
(:data:`RETRY_DELAYS`); a ``PATCH`` (a chunk appended to an upload) is not, since
the registry may have taken part of it. A 4xx is the registry's answer, never retried.
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urljoin

from ..errors import MinidockerError, NotFound
from . import auth

TIMEOUT = (10, 120)          # connect, and between two reads

#: Seconds to wait before the 2nd, 3rd and 4th try of a request that failed for a
#: reason that may pass; then the failure is reported. (Docker waits 5, 10, 15... s
#: between its five tries of a layer; a few shorter waits fit an interactive tool.)
RETRY_DELAYS = (0.5, 1.0, 2.0)

#: Statuses that say "not now" rather than "no": the server or a proxy in front of it.
RETRIABLE_STATUS = {500, 502, 503, 504}


def retriable(method: str, kw: dict) -> bool:
    """May this request be sent twice? Idempotent methods, a POST without a body, and
    only with a body we can send again from its start (bytes, or a file we can seek)."""
    body = kw.get("data")
    if body is not None and not isinstance(body, (bytes, str)) and not hasattr(body, "seek"):
        return False
    return method in ("GET", "HEAD", "PUT", "DELETE") or (method == "POST" and not body)


class RegistryUnauthorized(MinidockerError):
    pass


class ConnectionFailed(MinidockerError):
    """No answer came. ``transient``: the connection was reset or dropped, or timed out
    (worth another try); not for a refused connection or an unknown host, which say
    the address is wrong more often than that the registry is restarting."""

    def __init__(self, message: str, transient: bool):
        super().__init__(message)
        self.transient = transient


def error_message(response) -> str:
    """The spec's error body ``{"errors": [{"code", "message"}]}`` as Docker prints it:
    ``"manifest unknown: manifest unknown"``; else the HTTP status."""
    try:
        errors = json.loads(response.content or b"{}").get("errors") or []
        if errors:
            return "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                             for e in errors)
    except (ValueError, AttributeError):
        pass
    return f"{response.status_code} {response.reason}"


class Registry:
    """One registry host, an HTTP session to it, and the credentials for it."""

    def __init__(self, host: str, credentials: tuple[str, str] | None = None,
                 scheme: str | None = None):
        import requests                  # lazily: ~170 ms to import
        self.host = host
        self.scheme = scheme or ("http" if auth.is_insecure(host) else "https")
        self.base = f"{self.scheme}://{host}"
        self.credentials = credentials
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.challenge: tuple[str, dict] | None = None
        self.authorization: str | None = None      # the Authorization header in use
        self.scopes: set[str] = set()

    @classmethod
    def for_host(cls, registry_host: str, config_host: str | None = None) -> "Registry":
        """A client with the credentials ``minidocker login`` saved for the registry."""
        return cls(registry_host, auth.get_credentials(config_host or registry_host))

    def url(self, path_or_url: str) -> str:
        """Locations from the registry may be relative (the spec allows it)."""
        return urljoin(self.base + "/", path_or_url)

    # ---- raw requests
    def _send(self, method, url, **kw):
        """One request, tried again after a connection failure or a 5xx when that is
        safe (:func:`retriable`), after each of :data:`RETRY_DELAYS`."""
        tries = len(RETRY_DELAYS) + 1 if retriable(method, kw) else 1
        for attempt in range(tries):
            last = attempt == tries - 1
            try:
                r = self._send_once(method, url, dict(kw))
            except ConnectionFailed as e:
                if last or not e.transient:
                    raise
            else:
                if r.status_code not in RETRIABLE_STATUS or last:
                    return r
                r.close()
            time.sleep(RETRY_DELAYS[attempt])
            _rewind(kw.get("data"))

    def _send_once(self, method, url, kw):
        import requests  # lazy: see __init__
        headers = dict(kw.pop("headers", None) or {})
        if self.authorization:
            headers["Authorization"] = self.authorization
        kw.setdefault("timeout", TIMEOUT)
        kw.setdefault("allow_redirects", True)
        try:
            return self.session.request(method, self.url(url), headers=headers, **kw)
        except requests.exceptions.SSLError as e:
            raise MinidockerError(
                f"{method} {self.url(url)}: TLS error ({_reason(e)}); if {self.host} speaks plain "
                f"HTTP, add it to \"insecure-registries\" in {auth.config_path()}") from None
        except requests.exceptions.ConnectionError as e:
            reason = _reason(e)
            if reason in ("RemoteDisconnected", "Connection reset"):
                raise ConnectionFailed(f"{method} {self.url(url)}: the registry closed the "
                                       f"connection without answering ({reason})", True) from None
            raise ConnectionFailed(f"{method} {self.url(url)}: cannot reach the registry: "
                                   f"{reason}", reason not in PERMANENT) from None
        except requests.exceptions.Timeout:
            raise ConnectionFailed(f"{method} {self.url(url)}: the registry did not answer "
                                   "in time", True) from None

    # ---- authentication
    def login(self, scopes: list[str] = ()) -> None:
        """Ping ``/v2/`` and set up authorization for ``scopes`` (``repository:x:pull``).

        Called once before the real requests, so that bodies (layer uploads) are never
        sent only to be refused with a 401."""
        scopes = set(scopes)
        if self.authorization and scopes <= self.scopes:
            return
        self.scopes |= scopes
        if self.challenge is None:
            self.authorization = None
            r = self._send("GET", "/v2/")
            if r.status_code == 401:
                self.challenge = auth.parse_challenge(r.headers.get("WWW-Authenticate", ""))
            elif r.status_code == 404:
                raise MinidockerError(f"{self.host} does not speak the registry v2 API "
                                      f"(GET /v2/ returned 404)")
            elif r.status_code >= 400:
                raise MinidockerError(f"GET {self.url('/v2/')}: {error_message(r)}")
            else:
                self.challenge = ("none", {})
                return
        self._authorize()

    def _authorize(self, challenge_scope: str | None = None) -> None:
        scheme, params = self.challenge
        if scheme == "basic":
            if not self.credentials:
                raise RegistryUnauthorized(f"{self.host}: unauthorized: authentication required "
                                           f"(run 'minidocker login {self.host}')")
            user, password = self.credentials
            self.authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif scheme == "bearer":
            scopes = set(self.scopes)
            if challenge_scope:
                scopes.update(challenge_scope.split(" "))
            self.authorization = "Bearer " + self._fetch_token(params, sorted(scopes))
        elif scheme != "none":
            raise MinidockerError(f"{self.host}: unsupported authentication scheme {scheme!r}")

    def _fetch_token(self, params: dict, scopes: list[str]) -> str:
        """GET the token server (``realm``) with ``service`` and every ``scope``."""
        import requests  # lazy: see __init__
        realm = params.get("realm")
        if not realm:
            raise MinidockerError(f"{self.host}: bearer challenge without a realm")
        query = [("scope", s) for s in scopes]
        if params.get("service"):
            query.insert(0, ("service", params["service"]))
        try:
            r = self.session.get(realm, params=query, auth=self.credentials, timeout=TIMEOUT)
        except requests.exceptions.RequestException as e:
            raise MinidockerError(f"cannot reach the token server {realm}: {_reason(e)}") from None
        if r.status_code == 401:
            if self.credentials:
                raise RegistryUnauthorized(f"{self.host}: unauthorized: incorrect username or password")
            raise RegistryUnauthorized(f"{self.host}: unauthorized: authentication required "
                                       f"(run 'minidocker login {self.host}')")
        if r.status_code >= 400:
            raise RegistryUnauthorized(f"{self.host}: token server {realm}: {error_message(r)}")
        try:
            body = r.json()
            return body.get("token") or body["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise MinidockerError(f"token server {realm} sent no token") from None

    def request(self, method: str, url: str, expect=(200,), retry_body=True, **kw):
        """Send a request; on a 401 (token expired, new scope) authorize again and retry
        once. Raises with the registry's error message when the status is not expected."""
        r = self._send(method, url, **kw)
        if r.status_code == 401 and retry_body:
            challenge = auth.parse_challenge(r.headers.get("WWW-Authenticate", ""))
            if challenge[0] in ("basic", "bearer"):
                had = self.authorization
                self.challenge = challenge
                self._authorize(challenge[1].get("scope"))
                if self.authorization != had or challenge[0] == "bearer":
                    _rewind(kw.get("data"))
                    r = self._send(method, url, **kw)
        if r.status_code == 401:
            r.close()
            if self.credentials:
                raise RegistryUnauthorized(f"{self.host}: unauthorized: incorrect username or password")
            raise RegistryUnauthorized(f"{self.host}: unauthorized: authentication required "
                                       f"(run 'minidocker login {self.host}')")
        if r.status_code not in expect:
            message = error_message(r)
            r.close()
            cls = NotFound if r.status_code == 404 else MinidockerError
            raise cls(f"{method} {self.url(url).split('?')[0]}: {message}")
        return r


#: Reasons a connection failed that another try will not change.
PERMANENT = ("Connection refused", "Name or service not known")


def _rewind(body):
    seek = getattr(body, "seek", None)
    if seek:
        seek(0)


def _reason(exc) -> str:
    """The innermost cause of a requests exception, in a few words."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "Connection reset", "RemoteDisconnected", "certificate verify failed",
                   "wrong version number"):
        if marker in text:
            return marker
    return text.split("(Caused by ")[-1].rstrip(")") if "(Caused by " in text else text
