"""Images to and from registries: ``POST /images/create`` (pull, and import from a
tar), ``POST /images/{name}/push``, ``POST /auth``.

The work is the registry client's (:mod:`minidocker.registry.client`), the same
functions ``minidocker pull``/``push`` call; here its progress becomes Docker's JSON
message stream (:mod:`minidocker.api.progress`), which the docker CLI draws as it draws dockerd's.

Credentials come with each request, not from a file: the client sends
``X-Registry-Auth``, base64url of ``{"username", "password", "serveraddress"}`` (what
``docker login`` saved on the *client's* machine). ``POST /auth`` is ``docker login``'s
check that a user and password work; the daemon keeps nothing.
"""

from __future__ import annotations

from ..errors import InvalidInput
from .http import ApiError, json_response
from .progress import JsonProgress, streamed
from .router import route


def _store():
    from ..image.store import Store
    return Store()


def _credentials(req) -> tuple[str, str] | None:
    auth = req.registry_auth()
    user, password = auth.get("username"), auth.get("password")
    if user and password:
        return str(user), str(password)
    return None


def _join(name: str, tag: str | None) -> str:
    """``fromImage=busybox&tag=1.36`` -> ``busybox:1.36``; a tag that is a digest
    (``sha256:...``) joins with ``@``; a name that already has one keeps it."""
    if not tag:
        return name
    if tag.startswith("sha256:"):
        return f"{name}@{tag}"
    last = name.rsplit("/", 1)[-1]
    if "@" in name or ":" in last:
        return name
    return f"{name}:{tag}"


@route("POST", "/images/create")
def create_image(req):
    """``docker pull`` (``fromImage``, ``tag``, ``platform``) and ``docker import``
    (``fromSrc=-`` with the tar as the body, ``repo``, ``tag``, ``message``,
    ``changes``)."""
    from_image = req.query_str("fromImage")
    from_src = req.query_str("fromSrc")
    if from_image:
        return _pull(req, from_image)
    if from_src:
        return _import(req, from_src)
    raise ApiError(400, "either fromImage or fromSrc must be given")


def _pull(req, name: str):
    from ..image import reference
    from ..registry import client
    tag = req.query_str("tag")
    parsed = reference.parse(name, default_tag=False)   # a bad name: 400 before anything starts
    if not tag and not (parsed.tag or parsed.digest):
        # dockerd pulls every tag of the repository then (docker pull -a)
        raise InvalidInput("minidocker pulls one tag at a time (no docker pull --all-tags): "
                           "name a tag")
    ref = _join(name, tag)
    platform = req.query_str("platform") or None
    credentials = _credentials(req)
    store = _store()

    def work(sink):
        client.pull(ref, store, platform=platform, progress=JsonProgress(sink),
                    credentials=credentials)
    return streamed(work)


def _import(req, source: str):
    from ..image import bootstrap
    if source != "-":
        raise ApiError(400, "minidocker imports only from the request body (fromSrc=-), "
                            f"not from a URL: {source}")
    repo = req.query_str("repo") or ""
    tag = _join(repo, req.query_str("tag")) if repo else None
    message = req.query_str("message") or ""
    changes = req.query.get("changes", [])
    store = _store()
    body = req.body

    def work(sink):
        image_id = bootstrap.import_tarball(body, tag, "-", message, changes, store=store)
        sink.put({"status": image_id})
    return streamed(work)


@route("POST", "/images/{name:path}/push")
def push_image(req):
    """``docker push NAME[:TAG]``: the CLI sends the repository in the path and the tag
    in ``tag`` (empty: every tag of the repository, as Docker pushes them)."""
    from ..image import reference
    from ..registry import client
    name = req.params["name"]
    tag = req.query_str("tag")
    store = _store()
    if tag:
        refs = [_join(name, tag)]
    else:
        repo = reference.parse(name, default_tag=False)
        if repo.tag or repo.digest:
            refs = [name]
        else:
            wanted = reference.familiar_name(repo)
            refs = sorted(k for k in store.repositories()
                          if "@" not in k and reference.split_familiar(k)[0] == wanted)
            if not refs:
                raise ApiError(404, f"An image does not exist locally with the tag: {wanted}")
    credentials = _credentials(req)

    def work(sink):
        for ref in refs:
            client.push(ref, store, progress=JsonProgress(sink), credentials=credentials)
    return streamed(work)


@route("POST", "/auth")
def auth(req):
    """``docker login``: try the credentials against the registry (a 401 means wrong
    ones); nothing is stored on this side."""
    from ..registry.transport import Registry, RegistryUnauthorized
    body = req.json(default={})
    if not isinstance(body, dict):
        raise InvalidInput("invalid JSON: expected an object")
    user, password = body.get("username") or "", body.get("password") or ""
    server = str(body.get("serveraddress") or "docker.io")
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix):]
    host = server.split("/", 1)[0]
    if host in ("docker.io", "index.docker.io"):
        host = "registry-1.docker.io"
    registry = Registry(host, (str(user), str(password)))
    try:
        registry.login()
        if registry.challenge and registry.challenge[0] != "none":
            registry.request("GET", "/v2/").close()
    except RegistryUnauthorized as e:
        raise ApiError(401, str(e)) from None
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})
