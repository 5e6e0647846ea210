"""An embedded registry: the Distribution v2 API over a directory a learner can ``ls``.

``minidocker registry serve --addr 127.0.0.1:5000 --root DIR`` is enough for ``docker``,
``podman``, ``skopeo`` and minidocker itself to push and pull: the offline registry of
a teaching lab. It follows the OCI distribution spec ("spec.md", endpoints end-1 ...
end-13) and Docker's registry API where the spec is silent.

What is on disk (everything a registry "is")::

    DIR/blobs/sha256/<hex>                                  content, checked against its digest
    DIR/repositories/<name>/_layers/sha256/<hex>            empty: blob <hex> belongs to <name>
    DIR/repositories/<name>/_manifests/revisions/sha256/<hex>   the manifest's media type
    DIR/repositories/<name>/_manifests/tags/<tag>           the digest the tag points to
    DIR/uploads/<uuid>/data                                 an upload in progress
    DIR/uploads/<uuid>/repository                           ... and the repository it is for

Blobs are shared by every repository (one copy of busybox's layer for all images
built on it) but a repository may only serve the blobs *linked* into it: that is why
a cross-repository mount (``POST .../uploads/?mount=<digest>&from=<other>``) exists,
it links an existing blob without sending it again.

Uploads are atomic: bytes go to ``uploads/<uuid>/data``, and only when the client
says "done, digest is D" and the content hashes to D is the file renamed into
``blobs/``. A registry never serves a blob it has not verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid as uuidlib
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

from ..errors import InvalidInput
from .digest import parse_digest

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
COPY_CHUNK = 1 << 20

# Repository names: path components of lowercase alphanumerics separated by one
# '.', '_', '__' or '-'s, joined with '/' (distribution spec, "Pulling manifests").
NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{NAME_COMPONENT}(?:/{NAME_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

# The routes, matched against the path after /v2/. A name may contain slashes, so each
# route anchors on its fixed tail (…/manifests/<ref>, …/blobs/<digest>, …).
ROUTES = [
    ("catalog", re.compile(r"^_catalog$")),
    ("tags", re.compile(r"^(?P<name>.+)/tags/list$")),
    ("manifest", re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)$")),
    ("upload_start", re.compile(r"^(?P<name>.+)/blobs/uploads/?$")),
    ("upload", re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<uuid>[0-9a-f-]{36})$")),
    ("blob", re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
]

IMAGE_MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


# --------------------------------------------------------------------------- errors
class RegistryError(Exception):
    """An error in the spec's shape: ``{"errors": [{"code", "message", "detail"}]}``."""

    def __init__(self, status: int, code: str, message: str, detail=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> bytes:
        error = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return json.dumps({"errors": [error]}).encode()


def blob_unknown(digest):
    return RegistryError(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})


def manifest_unknown(ref):
    return RegistryError(404, "MANIFEST_UNKNOWN", "manifest unknown", {"reference": ref})


def name_unknown(name):
    return RegistryError(404, "NAME_UNKNOWN", "repository name not known to registry",
                         {"name": name})


def digest_invalid(detail):
    return RegistryError(400, "DIGEST_INVALID",
                         "provided digest did not match uploaded content", detail)


def upload_unknown(uid):
    return RegistryError(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry",
                         {"uuid": uid})


# --------------------------------------------------------------------------- htpasswd
def load_htpasswd(path: str) -> dict[str, str]:
    """Read an Apache ``htpasswd`` file: one ``user:hash`` per line."""
    users = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and ":" in line:
                user, hashed = line.split(":", 1)
                users[user] = hashed
    if any(h.startswith(("$2y$", "$2b$", "$2a$")) for h in users.values()) and not _bcrypt_available():
        raise InvalidInput(f"{path}: bcrypt hashes need the 'bcrypt' package or Python's "
                           "crypt module (removed in Python 3.13)")
    return users


def _bcrypt_available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("bcrypt", "crypt"))


def check_password(password: str, hashed: str) -> bool:
    """Check ``password`` against one htpasswd hash.

    Distribution accepts only bcrypt (``$2y$``/``$2b$``/``$2a$``, what ``htpasswd -B``
    writes). We check bcrypt with the C library's ``crypt(3)`` (glibc/libxcrypt
    implement bcrypt; Python's ``crypt`` module wraps it), or the ``bcrypt`` package
    when it is installed. We also accept ``{SHA}`` (``htpasswd -s``) and, for labs
    only, a plain-text password (``htpasswd -p``): both are weak and Distribution
    refuses them.
    """
    if hashed.startswith(("$2y$", "$2b$", "$2a$")):
        return _check_bcrypt(password, hashed)
    if hashed.startswith("{SHA}"):
        expected = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest(expected, hashed[5:])
    if hashed.startswith("$"):
        return False           # $apr1$ (Apache MD5) and others: not supported
    return hmac.compare_digest(password, hashed)


def _check_bcrypt(password: str, hashed: str) -> bool:
    try:
        import bcrypt  # optional (not a dependency): ImportError is the normal case
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # crypt: removed in 3.13
        try:
            import crypt  # the fallback; gone in Python 3.13
        except ImportError:
            return False
    # libxcrypt knows $2b$/$2y$; $2a$ is the same algorithm for ASCII passwords
    result = crypt.crypt(password, hashed)
    return result is not None and hmac.compare_digest(result, hashed)


def bcrypt_hash(password: str, rounds_log2: int = 10) -> str:
    """An ``htpasswd -B`` style hash (for tests and labs writing an htpasswd file)."""
    try:
        import bcrypt  # optional, as above
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds_log2)).decode()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the fallback, as above
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << rounds_log2))


# --------------------------------------------------------------------------- storage
class Storage:
    """The registry's directory (see the module docstring for the layout)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        for d in ("blobs", "repositories", "uploads"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        # upload uuid -> (hasher, bytes hashed): hashing as chunks arrive saves a re-read
        # at the end; after a restart we fall back to hashing the file.
        self._hashers: dict[str, tuple] = {}
        self._lock = threading.Lock()

    # ---- paths
    def blob_path(self, digest: str) -> str:
        algo, hexpart = parse_digest(digest)
        return os.path.join(self.root, "blobs", algo, hexpart)

    def repo_dir(self, name: str) -> str:
        return os.path.join(self.root, "repositories", *name.split("/"))

    def _layer_link(self, name, digest):
        algo, hexpart = parse_digest(digest)
        return os.path.join(self.repo_dir(name), "_layers", algo, hexpart)

    def _revision(self, name, digest):
        algo, hexpart = parse_digest(digest)
        return os.path.join(self.repo_dir(name), "_manifests", "revisions", algo, hexpart)

    def _tag_file(self, name, tag):
        return os.path.join(self.repo_dir(name), "_manifests", "tags", tag)

    def upload_dir(self, uid: str) -> str:
        return os.path.join(self.root, "uploads", uid)

    # ---- repositories
    def repo_exists(self, name: str) -> bool:
        d = self.repo_dir(name)
        return os.path.isdir(os.path.join(d, "_manifests")) or os.path.isdir(os.path.join(d, "_layers"))

    def repositories(self) -> list[str]:
        """Every repository name: a directory holding ``_manifests`` or ``_layers``."""
        base = os.path.join(self.root, "repositories")
        names = []
        for dirpath, dirnames, _ in os.walk(base):
            if "_manifests" in dirnames or "_layers" in dirnames:
                names.append(os.path.relpath(dirpath, base))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(names)

    def tags(self, name: str) -> list[str]:
        d = os.path.join(self.repo_dir(name), "_manifests", "tags")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    # ---- blobs
    def has_blob(self, digest: str) -> bool:
        return os.path.isfile(self.blob_path(digest))

    def repo_has_blob(self, name: str, digest: str) -> bool:
        return self.has_blob(digest) and os.path.exists(self._layer_link(name, digest))

    def link_blob(self, name: str, digest: str) -> None:
        link = self._layer_link(name, digest)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        with open(link, "a"):
            pass

    def unlink_blob(self, name: str, digest: str) -> None:
        try:
            os.unlink(self._layer_link(name, digest))
        except FileNotFoundError:
            raise blob_unknown(digest) from None

    # ---- uploads
    def new_upload(self, name: str) -> str:
        uid = str(uuidlib.uuid4())
        d = self.upload_dir(uid)
        os.makedirs(d)
        with open(os.path.join(d, "repository"), "w") as f:
            f.write(name)
        open(os.path.join(d, "data"), "wb").close()
        return uid

    def upload_size(self, name: str, uid: str) -> int:
        d = self.upload_dir(uid)
        try:
            with open(os.path.join(d, "repository")) as f:
                if f.read() != name:
                    raise upload_unknown(uid)
            return os.path.getsize(os.path.join(d, "data"))
        except FileNotFoundError:
            raise upload_unknown(uid) from None

    def append_upload(self, uid: str, chunks) -> int:
        """Append the byte chunks to the upload; return its new size."""
        path = os.path.join(self.upload_dir(uid), "data")
        with self._lock:
            hasher, hashed = self._hashers.get(uid, (hashlib.sha256(), 0))
        with open(path, "ab") as f:
            in_step = f.tell() == hashed
            for chunk in chunks:
                f.write(chunk)
                if in_step:
                    hasher.update(chunk)
            size = f.tell()
        if in_step:
            with self._lock:
                self._hashers[uid] = (hasher, size)
        return size

    def purge_stale_uploads(self, max_age: float = 7 * 86400) -> int:
        """Drop upload sessions untouched for ``max_age`` seconds (a client that went
        away; Distribution purges after a week too). Returns how many went."""
        base = os.path.join(self.root, "uploads")
        gone = 0
        for uid in os.listdir(base):
            path = os.path.join(base, uid)
            try:
                if time.time() - os.stat(path).st_mtime > max_age:
                    self.cancel_upload(uid) if os.path.isdir(path) else os.unlink(path)
                    gone += 1
            except FileNotFoundError:
                pass
        return gone

    def cancel_upload(self, uid: str) -> None:
        with self._lock:
            self._hashers.pop(uid, None)
        shutil.rmtree(self.upload_dir(uid), ignore_errors=True)

    def finish_upload(self, name: str, uid: str, digest: str) -> None:
        """Check the upload against ``digest``; on success move it into ``blobs/``.

        The rename is the commit point: ``blobs/`` only ever holds verified content.
        On a mismatch the upload is dropped (the client must start over), as
        Distribution does."""
        algo, _ = parse_digest(digest)
        path = os.path.join(self.upload_dir(uid), "data")
        with self._lock:
            hasher, hashed = self._hashers.pop(uid, (None, -1))
        if algo != "sha256" or hasher is None or hashed != os.path.getsize(path):
            hasher = hashlib.new(algo)
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(COPY_CHUNK), b""):
                    hasher.update(chunk)
        actual = f"{algo}:{hasher.hexdigest()}"
        if actual != digest:
            self.cancel_upload(uid)
            raise digest_invalid({"expected": digest, "actual": actual})
        dest = self.blob_path(digest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        os.rename(path, dest)       # same filesystem: atomic
        self.cancel_upload(uid)
        self.link_blob(name, digest)

    def put_blob_bytes(self, data: bytes) -> str:
        """Store small verified content (a manifest) under its sha256 digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        dest = self.blob_path(digest)
        if not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.join(self.root, "uploads"))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.rename(tmp, dest)
        return digest

    # ---- manifests
    def put_manifest(self, name: str, ref: str, body: bytes, media_type: str) -> str:
        """Store a manifest after checking that everything it references is here.

        A registry must refuse a manifest naming blobs it does not have
        (MANIFEST_BLOB_UNKNOWN): otherwise a pull of the tag would fail half-way. That
        is why clients push the layers and config first, the manifest last."""
        try:
            manifest = json.loads(body)
        except ValueError:
            raise RegistryError(400, "MANIFEST_INVALID", "manifest invalid",
                                "manifest is not valid JSON") from None
        if not isinstance(manifest, dict):
            raise RegistryError(400, "MANIFEST_INVALID", "manifest invalid",
                                "manifest is not a JSON object")
        media_type = media_type or manifest.get("mediaType") or ""
        if ref.startswith(("sha256:", "sha512:")) or ":" in ref:
            algo, _ = parse_digest(ref)
            computed = f"{algo}:{hashlib.new(algo, body).hexdigest()}"
            if computed != ref:
                raise digest_invalid({"expected": ref, "actual": computed})
        elif not TAG_RE.match(ref):
            raise RegistryError(400, "TAG_INVALID", "manifest tag did not match URI", {"tag": ref})
        self._check_references(name, manifest, media_type)
        digest = self.put_blob_bytes(body)
        revision = self._revision(name, digest)
        os.makedirs(os.path.dirname(revision), exist_ok=True)
        _write_small(revision, media_type)
        if not ref.startswith(("sha256:", "sha512:")):
            tag_file = self._tag_file(name, ref)
            os.makedirs(os.path.dirname(tag_file), exist_ok=True)
            _write_small(tag_file, digest)
        return digest

    def _check_references(self, name, manifest, media_type):
        missing = []
        if media_type in INDEX_TYPES or "manifests" in manifest:
            for child in manifest.get("manifests") or []:
                d = child.get("digest", "")
                if not (_valid_digest(d) and os.path.exists(self._revision(name, d))):
                    missing.append(d)
        else:
            children = [manifest.get("config") or {}] + list(manifest.get("layers") or [])
            for child in children:
                if child.get("urls"):          # "foreign" layers live elsewhere
                    continue
                d = child.get("digest", "")
                if not (_valid_digest(d) and self.repo_has_blob(name, d)):
                    missing.append(d)
        if missing:
            raise RegistryError(400, "MANIFEST_BLOB_UNKNOWN",
                                "blob unknown to registry", {"digest": missing[0]})

    def resolve_manifest(self, name: str, ref: str) -> tuple[str, str]:
        """``(digest, media type)`` of a manifest named by tag or digest."""
        if not self.repo_exists(name):
            raise name_unknown(name)
        if ":" in ref:
            if not _valid_digest(ref):
                raise RegistryError(400, "DIGEST_INVALID", "invalid digest", {"digest": ref})
            digest = ref
        elif not TAG_RE.match(ref):      # also keeps "..", "." out of the tags directory
            raise RegistryError(400, "TAG_INVALID", "manifest tag did not match URI", {"tag": ref})
        else:
            try:
                with open(self._tag_file(name, ref)) as f:
                    digest = f.read().strip()
            except (FileNotFoundError, NotADirectoryError):
                raise manifest_unknown(ref) from None
        try:
            with open(self._revision(name, digest)) as f:
                media_type = f.read().strip()
        except FileNotFoundError:
            raise manifest_unknown(ref) from None
        return digest, media_type

    def delete_manifest(self, name: str, ref: str) -> None:
        """By digest: forget the revision and every tag pointing at it. By tag: drop the
        tag only (the newer spec allows this; the manifest stays reachable by digest)."""
        digest, _ = self.resolve_manifest(name, ref)
        if ":" not in ref:
            os.unlink(self._tag_file(name, ref))
            return
        for tag in self.tags(name):
            try:
                with open(self._tag_file(name, tag)) as f:
                    if f.read().strip() == digest:
                        os.unlink(self._tag_file(name, tag))
            except FileNotFoundError:
                pass
        os.unlink(self._revision(name, digest))


def _valid_digest(d: str) -> bool:
    try:
        parse_digest(d)
        return True
    except InvalidInput:
        return False


def _write_small(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


# --------------------------------------------------------------------------- HTTP
class RegistryHandler(BaseHTTPRequestHandler):
    """One request. ``self.server`` carries ``storage``, ``users`` and ``quiet``."""

    protocol_version = "HTTP/1.1"       # keep-alive: clients reuse connections
    server_version = "minidocker-registry"

    # ---- plumbing
    def log_message(self, fmt, *args):
        if not self.server.quiet:
            super().log_message(fmt, *args)

    def parse_request(self):
        # Clients try HTTPS first (skopeo, podman, docker with an "insecure" registry):
        # a TLS ClientHello starts with byte 0x16. Say so instead of logging garbage;
        # closing the connection makes the client fall back to plain HTTP.
        if self.raw_requestline.startswith(b"\x16\x03"):
            self.log_message("TLS handshake refused: this registry speaks plain HTTP")
            self.close_connection = True
            return False
        return super().parse_request()

    def end_headers(self):
        self._answered = True
        super().end_headers()

    def _dispatch(self):
        self._body_consumed = False
        self._answered = False
        try:
            url = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            self._authenticate()
            path = url.path
            if path in ("/v2", "/v2/"):
                return self.api_base()
            if not path.startswith("/v2/"):
                raise RegistryError(404, "NOT_FOUND", "not found")
            rest = path[len("/v2/"):]
            for route, regex in ROUTES:
                m = regex.match(rest)
                if m:
                    args = m.groupdict()
                    if "name" in args and not NAME_RE.match(args["name"]):
                        raise RegistryError(400, "NAME_INVALID", "invalid repository name",
                                            {"name": args["name"]})
                    handler = getattr(self, f"{route}_{self.command.lower()}", None)
                    if handler is None:
                        raise RegistryError(405, "UNSUPPORTED", "The operation is unsupported.")
                    return handler(**args)
            raise RegistryError(404, "NOT_FOUND", "not found")
        except RegistryError as e:
            self._send_error(e)
        except InvalidInput as e:
            self._send_error(RegistryError(400, "DIGEST_INVALID", str(e)))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:        # a bug: answer 500 rather than hang the client
            self.log_error("internal error: %r", e)
            self._send_error(RegistryError(500, "UNKNOWN", "unknown error", repr(e)))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _send(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        self.send_header(*API_VERSION_HEADER)
        if content_type and (body or status == 200):
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if not self._body_consumed and self._request_has_body():
            # We answer without reading what the client sent: the connection cannot be
            # reused, its leftover bytes would be read as the next request.
            self.send_header("Connection", "close")
            self.close_connection = True
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, err: RegistryError):
        if self._answered:
            # Failed half-way through an answer (a blob being sent): a second status
            # line would corrupt the stream. Hang up; the client sees a short body.
            self.close_connection = True
            return
        try:
            self._send(err.status, err.body() if self.command != "HEAD" else b"", err.headers)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _request_has_body(self):
        return (self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                or int(self.headers.get("Content-Length") or 0) > 0)

    def _body_chunks(self):
        """The request body as byte chunks, streamed; HTTP/1.1 chunked encoding decoded
        (containers/image, i.e. podman and skopeo, send PATCH bodies that way)."""
        self._body_consumed = True
        rfile = self.rfile
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = rfile.readline(1024)
                if not line:
                    raise ConnectionError("client went away mid-upload")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass                    # trailers
                    return
                while size:
                    data = rfile.read(min(size, COPY_CHUNK))
                    if not data:
                        raise ConnectionError("client went away mid-upload")
                    size -= len(data)
                    yield data
                rfile.readline(1024)            # CRLF after each chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                data = rfile.read(min(remaining, COPY_CHUNK))
                if not data:
                    raise ConnectionError("client went away mid-upload")
                remaining -= len(data)
                yield data

    def _read_body(self, limit: int) -> bytes:
        parts, total = [], 0
        for chunk in self._body_chunks():
            total += len(chunk)
            if total > limit:
                raise RegistryError(413, "SIZE_INVALID", "manifest too large")
            parts.append(chunk)
        return b"".join(parts)

    def _authenticate(self):
        """Basic auth against the htpasswd file, when one was given.

        The 401 carries ``WWW-Authenticate: Basic realm=...``: that challenge is how a
        client learns which kind of credentials to send (``docker login`` tries ``/v2/``
        first for exactly this reason)."""
        users = self.server.users
        if users is None:
            return
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = None
            if user in users and self.server.check_credentials(user, password, users[user]):
                return
        raise RegistryError(401, "UNAUTHORIZED", "authentication required",
                            headers={"WWW-Authenticate": 'Basic realm="minidocker-registry"'})

    # ---- /v2/
    def api_base(self):
        """end-1: 200 means "this is a v2 registry and you may talk to it"."""
        if self.command not in ("GET", "HEAD"):
            raise RegistryError(405, "UNSUPPORTED", "The operation is unsupported.")
        self._send(200, b"{}")

    # ---- catalog and tags (paginated with n= and last=, a Link header for the next page)
    def _paginate(self, items, base_path):
        last = self.query.get("last")
        if last:
            items = [i for i in items if i > last]
        headers = {}
        n = self.query.get("n")
        if n:
            try:
                n = int(n)
            except ValueError:
                raise RegistryError(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested") from None
            if len(items) > n:
                items = items[:n]
                headers["Link"] = f'<{base_path}?last={quote(items[-1])}&n={n}>; rel="next"'
        return items, headers

    def catalog_get(self):
        repos, headers = self._paginate(self.server.storage.repositories(), "/v2/_catalog")
        self._send(200, json.dumps({"repositories": repos}).encode(), headers)

    def tags_get(self, name):
        storage = self.server.storage
        if not storage.repo_exists(name):
            raise name_unknown(name)
        tags, headers = self._paginate(storage.tags(name), f"/v2/{name}/tags/list")
        self._send(200, json.dumps({"name": name, "tags": tags}).encode(), headers)

    # ---- blobs
    def blob_head(self, name, digest):
        self.blob_get(name, digest)

    def blob_get(self, name, digest):
        """end-2: a blob, all of it or a ``Range: bytes=a-b`` of it (206)."""
        storage = self.server.storage
        parse_digest(digest)
        if not storage.repo_has_blob(name, digest):
            raise blob_unknown(digest)
        path = storage.blob_path(digest)
        size = os.path.getsize(path)
        start, end, status = 0, size - 1, 200
        headers = {"Docker-Content-Digest": digest, "Accept-Ranges": "bytes",
                   "Etag": f'"{digest}"'}
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                raise RegistryError(416, "RANGE_INVALID", "invalid range",
                                    headers={"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:                                   # bytes=-N: the last N bytes
                start = max(0, size - int(m.group(2)))
            if start >= size or start > end:
                raise RegistryError(416, "RANGE_INVALID", "range not satisfiable",
                                    headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1 if size else 0
        headers["Content-Length"] = str(length)
        self._send(status, b"", headers, content_type="application/octet-stream")
        if self.command == "GET" and length:
            self.wfile.flush()
            with open(path, "rb") as f:
                # sendfile(2): the kernel copies file -> socket, no trip through Python
                self.connection.sendfile(f, offset=start, count=length)

    def blob_delete(self, name, digest):
        self.server.storage.unlink_blob(name, digest)
        self._send(202, b"", {"Docker-Content-Digest": digest})

    # ---- uploads
    def _upload_headers(self, name, uid, size):
        return {"Location": f"/v2/{name}/blobs/uploads/{uid}",
                "Docker-Upload-UUID": uid,
                # Range is inclusive; an empty upload is reported as 0-0 by convention
                "Range": f"0-{max(size - 1, 0)}"}

    def upload_start_post(self, name):
        """end-4a/4b/11: start an upload, upload in one go (``?digest=``), or mount.

        ``?mount=<digest>&from=<repo>``: if ``repo`` has the blob, link it into ``name``
        (201, nothing sent). Otherwise fall back to a normal upload session (202), as
        the spec requires."""
        storage = self.server.storage
        mount, source = self.query.get("mount"), self.query.get("from")
        if mount and source:
            parse_digest(mount)
            if NAME_RE.match(source) and storage.repo_has_blob(source, mount):
                storage.link_blob(name, mount)
                return self._send(201, b"", {"Location": f"/v2/{name}/blobs/{mount}",
                                             "Docker-Content-Digest": mount})
        uid = storage.new_upload(name)
        digest = self.query.get("digest")
        if digest:                                   # monolithic: POST with the body
            parse_digest(digest)
            try:
                storage.append_upload(uid, self._body_chunks())
                storage.finish_upload(name, uid, digest)
            except BaseException:
                storage.cancel_upload(uid)
                raise
            return self._send(201, b"", {"Location": f"/v2/{name}/blobs/{digest}",
                                         "Docker-Content-Digest": digest})
        self._send(202, b"", self._upload_headers(name, uid, 0))

    def upload_get(self, name, uuid):
        """end-13: how much of the upload the registry has (to resume)."""
        size = self.server.storage.upload_size(name, uuid)
        self._send(204, b"", self._upload_headers(name, uuid, size))

    def upload_patch(self, name, uuid):
        """end-5: one chunk. ``Content-Range: a-b`` must continue exactly where the
        upload is (416 otherwise); a PATCH without it is a streamed chunk."""
        storage = self.server.storage
        size = storage.upload_size(name, uuid)
        rng = self.headers.get("Content-Range")
        if rng:
            m = re.fullmatch(r"(?:bytes )?(\d+)-(\d+)(?:/\d+|/\*)?", rng.strip())
            if not m or int(m.group(1)) != size:
                raise RegistryError(416, "BLOB_UPLOAD_INVALID", "blob upload invalid",
                                    "chunk out of order", self._upload_headers(name, uuid, size))
        size = storage.append_upload(uuid, self._body_chunks())
        self._send(202, b"", self._upload_headers(name, uuid, size))

    def upload_put(self, name, uuid):
        """end-6: the last (possibly empty) chunk, and ``?digest=``: verify and commit."""
        storage = self.server.storage
        storage.upload_size(name, uuid)
        digest = self.query.get("digest")
        if not digest:
            raise RegistryError(400, "DIGEST_INVALID", "digest missing")
        parse_digest(digest)
        storage.append_upload(uuid, self._body_chunks())
        storage.finish_upload(name, uuid, digest)
        self._send(201, b"", {"Location": f"/v2/{name}/blobs/{digest}",
                              "Docker-Content-Digest": digest})

    def upload_delete(self, name, uuid):
        self.server.storage.upload_size(name, uuid)
        self.server.storage.cancel_upload(uuid)
        self._send(204)

    # ---- manifests
    def manifest_head(self, name, ref):
        self.manifest_get(name, ref)

    def manifest_get(self, name, ref):
        storage = self.server.storage
        digest, media_type = storage.resolve_manifest(name, ref)
        with open(storage.blob_path(digest), "rb") as f:
            body = f.read()
        headers = {"Docker-Content-Digest": digest, "Etag": f'"{digest}"',
                   "Content-Length": str(len(body))}
        self.send_response(200)
        self.send_header(*API_VERSION_HEADER)
        self.send_header("Content-Type", media_type or "application/json")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def manifest_put(self, name, ref):
        """end-7: the manifest, last. Tag (or digest) now names the image."""
        body = self._read_body(MAX_MANIFEST_BYTES)
        media_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        digest = self.server.storage.put_manifest(name, ref, body, media_type)
        self._send(201, b"", {"Location": f"/v2/{name}/manifests/{digest}",
                              "Docker-Content-Digest": digest})

    def manifest_delete(self, name, ref):
        self.server.storage.delete_manifest(name, ref)
        self._send(202)


class RegistryServer(ThreadingHTTPServer):
    """The HTTP server: one thread per connection, shared :class:`Storage`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], root: str, htpasswd: str | None = None,
                 quiet: bool = False):
        self.storage = Storage(root)
        self.storage.purge_stale_uploads()
        self.users = load_htpasswd(htpasswd) if htpasswd else None
        self.quiet = quiet
        # bcrypt is slow by design (~tens of ms): remember pairs already checked
        self._good_credentials: set[bytes] = set()
        super().__init__(addr, RegistryHandler)

    def check_credentials(self, user: str, password: str, hashed: str) -> bool:
        key = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        if key in self._good_credentials:
            return True
        if check_password(password, hashed):
            self._good_credentials.add(key)
            return True
        return False

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def parse_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``:5000`` means all interfaces, as Distribution reads it)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidInput(f"invalid listen address {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def make_server(addr: str = "127.0.0.1:5000", root: str = "/var/lib/minidocker-registry",
                htpasswd: str | None = None, quiet: bool = False) -> RegistryServer:
    """Bind (port 0 picks a free one) and return the server, not yet serving."""
    return RegistryServer(parse_addr(addr), root, htpasswd, quiet)


def start_in_thread(root: str, addr: str = "127.0.0.1:0", htpasswd: str | None = None,
                    quiet: bool = True) -> RegistryServer:
    """Serve in a background thread (tests, benchmarks); stop with ``server.shutdown();
    server.server_close()``."""
    server = make_server(addr, root, htpasswd, quiet)
    # a short poll interval: shutdown() waits up to one interval
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="registry", daemon=True)
    thread.start()
    server.thread = thread
    return server
