"""``docker pull`` and ``docker push``: moving an image between the store and a registry.

Pull (distribution spec, "Pull"):

1. ``GET /v2/<name>/manifests/<tag>`` with an ``Accept`` header listing the formats we
   read: Docker schema2 and OCI manifests, and *lists/indexes* of them (multi-arch
   images: one manifest per platform, we pick ``linux/<this machine>``);
2. ``GET /v2/<name>/blobs/<config digest>``: the image config (its sha256 is the id);
3. ``GET /v2/<name>/blobs/<layer digest>`` for each layer we do not have yet
   ("Already exists" otherwise), several at once. Each layer streams straight into the
   store, hashed on the way: its digest and size must be what the manifest said, and
   its uncompressed digest what the config's ``rootfs.diff_ids`` say.

If anything fails, everything this pull added to the store is removed again: a pull
either completes or leaves the store as it was.

Push, the other way round (distribution spec, "Push"):

1. for every layer, ``HEAD /v2/<name>/blobs/<digest>``: a 200 means the registry has it
   already ("Layer already exists"), nothing to send;
2. else, if we know another repository of that registry holding the blob (we pulled it
   from there, or pushed it there), ask for a *cross-repository mount*:
   ``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`` ("Mounted from ...");
3. else upload: ``POST .../uploads/`` opens a session (its ``Location``), then either
   one ``PUT <location>?digest=`` with the whole blob (monolithic), or ``PATCH``
   chunks followed by a ``PUT`` (chunked); the registry checks the digest;
4. the config blob the same way, and the manifest LAST: a registry refuses a manifest
   naming blobs it does not have, so pushing it last makes the tag appear atomically.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit, urlunsplit

from .. import paths
from ..errors import InvalidInput, MinidockerError, NotFound
from ..image import reference
from ..image.store import Store, canonical_json, host_architecture
from . import digest as digests
from . import transport
from .progress import Progress, short_id
from .transport import Registry

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v1+prettyjws")
ACCEPT = ", ".join([MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST])

# Docker's schema2 layer types and their OCI twins (same bytes, other name). The store
# keeps OCI manifests, so pulled layers are recorded under the OCI names.
LAYER_TYPE_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
LAYER_TYPES = set(LAYER_TYPE_TO_OCI) | set(LAYER_TYPE_TO_OCI.values()) | {
    "application/vnd.oci.image.layer.v1.tar+zstd"}

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 16 << 20
READ_CHUNK = 1 << 20
DOWNLOAD_THREADS = 3        # Docker's max-concurrent-downloads
UPLOAD_THREADS = 5          # Docker's max-concurrent-uploads


# =========================================================================== helpers
def _registry_for(ref, credentials: tuple[str, str] | None = None) -> Registry:
    """A client for the reference's registry: with ``credentials`` (a user and a
    password the caller has, as the Engine API gets them in ``X-Registry-Auth``), else
    those ``minidocker login`` saved."""
    if credentials:
        return Registry(ref.registry_host, credentials)
    return Registry.for_host(ref.registry_host, ref.domain)


def _reference(ref: str):
    return reference.parse(ref)


def _out(out):
    return out if out is not None else sys.stdout


class _Body:
    """A response body as a file object: raw bytes (no transparent gunzip: a layer's
    digest is over its compressed bytes), connection errors turned into one clear
    error, a shared ``cancel`` event checked between reads, progress reported.

    With ``reopen`` (offset -> a new response), a connection lost in the middle is
    *resumed*, a few times (:data:`~minidocker.registry.transport.RETRY_DELAYS`): the
    blob is asked for again from the first byte not yet read, with ``Range:
    bytes=N-``. A registry that can (``206 Partial Content``, the spec's blob GET
    allows it) sends only the rest; one that cannot (``200``) sends it all again and
    the bytes already had are skipped. Whatever the path, the reader of this stream
    hashes all of it: the digest of the whole blob is still checked."""

    def __init__(self, response, what: str, cancel: threading.Event | None = None,
                 on_progress=None, reopen=None, on_retry=None):
        self.response = response
        self.what = what
        self.cancel = cancel
        self.on_progress = on_progress
        self.reopen = reopen
        self.on_retry = on_retry
        self.resumes = 0
        self.count = 0
        self.done = False

    def read(self, n: int = -1) -> bytes:
        import requests  # lazy, as in .transport: ~170 ms, loaded there by the request
        import urllib3
        if self.cancel is not None and self.cancel.is_set():
            raise MinidockerError("pull cancelled")
        try:
            data = self.response.raw.read(n if n and n > 0 else READ_CHUNK, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException,
                ConnectionError, TimeoutError) as e:
            lost = MinidockerError(f"{self.what}: connection lost while downloading "
                                   f"after {self.count} bytes ({type(e).__name__})")
            self._resume(lost)
            return self.read(n)
        if data or not self.done:
            self.count += len(data)
            if self.on_progress:
                self.on_progress(self.count, done=not data)
        self.done = not data
        return data

    def _resume(self, lost: MinidockerError) -> None:
        """Ask for the rest of the blob (see the class docstring), or give up with
        ``lost`` when there is no way or no try left."""
        if self.reopen is None or self.resumes >= len(transport.RETRY_DELAYS):
            raise lost from None
        delay = transport.RETRY_DELAYS[self.resumes]
        self.resumes += 1
        if self.on_retry:
            self.on_retry(delay)
        time.sleep(delay)
        self.response.close()
        response = self.reopen(self.count)
        if response.status_code == 206:
            first = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if first != str(self.count):
                response.close()
                raise MinidockerError(f"{self.what}: asked to resume at byte {self.count}, the "
                                      f"registry sent {response.headers.get('Content-Range')!r}")
            self.response = response
            return
        self.response = response           # 200: all of it again; skip what we have
        skip = self.count
        while skip:
            try:
                chunk = response.raw.read(min(skip, READ_CHUNK), decode_content=False)
            except Exception as e:        # lost again while skipping: try once more
                self._resume(MinidockerError(f"{self.what}: connection lost while downloading "
                                             f"after {self.count} bytes ({type(e).__name__})"))
                return
            if not chunk:
                raise MinidockerError(f"{self.what}: the registry sent the blob again, "
                                      f"shorter than the {self.count} bytes already read")
            skip -= len(chunk)


def _reopener(registry: Registry, url: str):
    """For :class:`_Body`: the blob at ``url`` again, from byte ``offset``."""
    def reopen(offset: int):
        return registry.request("GET", url, expect=(200, 206), stream=True,
                                headers={"Range": f"bytes={offset}-"})
    return reopen


def _check_descriptor(desc: dict, what: str) -> None:
    if not isinstance(desc, dict):
        raise InvalidInput(f"{what}: malformed descriptor")
    digests.parse_digest(desc.get("digest", ""))
    if not isinstance(desc.get("size"), int) or desc["size"] < 0:
        raise InvalidInput(f"{what} {desc.get('digest')}: missing or invalid size")


def _fetch_small_blob(registry: Registry, repo: str, desc: dict, limit: int, what: str) -> bytes:
    url = f"/v2/{repo}/blobs/{desc['digest']}"
    r = registry.request("GET", url, stream=True)
    body = None
    try:
        if desc["size"] > limit:
            raise InvalidInput(f"{what} {desc['digest']} is too large ({desc['size']} bytes)")
        body = _Body(r, f"{what} {desc['digest']}", reopen=_reopener(registry, url))
        reader = digests.VerifyingReader(body, desc["digest"], desc["size"], what)
        parts = []
        while True:
            chunk = reader.read(READ_CHUNK)
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)
    finally:
        r.close()
        if body is not None:
            body.response.close()


# =========================================================================== sources
def _sources_path(store) -> str:
    return os.path.join(store.root, "distribution", "blob-sources.json")


def known_sources(store, digest: str) -> list[str]:
    """Repositories (``host/path``) known to hold ``digest``: the candidates for a
    cross-repository mount (Docker keeps the same in ``image/*/distribution/``)."""
    try:
        return paths.read_json(_sources_path(store)).get(digest, [])
    except (FileNotFoundError, ValueError):
        return []


def remember_sources(store, digest_list, repository: str) -> None:
    with paths.locked("distribution", root=store.root):
        try:
            sources = paths.read_json(_sources_path(store))
        except (FileNotFoundError, ValueError):
            sources = {}
        for d in digest_list:
            repos = [r for r in sources.get(d, []) if r != repository]
            sources[d] = ([repository] + repos)[:5]
        paths.write_json(_sources_path(store), sources)


# =========================================================================== pull
def fetch_manifest(registry: Registry, repo: str, ref: str) -> tuple[bytes, str, str]:
    """``(bytes, media type, digest)`` of a manifest; the digest is computed from the
    bytes (and must equal ``ref`` when ``ref`` is a digest: a pull by digest is a
    promise about content)."""
    r = registry.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT},
                         stream=True)
    try:
        reader, parts, total = _Body(r, f"manifest {ref}"), [], 0
        while total <= MAX_MANIFEST:
            chunk = reader.read(READ_CHUNK)
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        body = b"".join(parts)
    finally:
        r.close()
    if len(body) > MAX_MANIFEST:
        raise InvalidInput(f"manifest {ref} is larger than {MAX_MANIFEST} bytes")
    algorithm = digests.parse_digest(ref)[0] if ":" in ref else "sha256"
    digest = digests.digest_bytes(body, algorithm)
    if ":" in ref and digest != ref:
        raise digests.DigestMismatch(f"manifest {ref}: content does not match its digest "
                                     f"(got {digest})")
    media_type = r.headers.get("Content-Type", "").split(";")[0].strip()
    return body, media_type, digest


def parse_manifest(body: bytes, media_type: str, what: str) -> tuple[dict, str]:
    """The manifest as a dict and its media type (from the body when it says)."""
    try:
        manifest = json.loads(body)
    except ValueError:
        raise InvalidInput(f"{what}: the registry sent a manifest that is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise InvalidInput(f"{what}: the manifest is not a JSON object")
    media_type = manifest.get("mediaType") or media_type
    if media_type in MEDIA_DOCKER_SCHEMA1 or manifest.get("schemaVersion") == 1:
        raise InvalidInput(f"{what}: unsupported manifest format schema1 (deprecated): "
                           "push it again with a current client")
    if not media_type:
        media_type = MEDIA_OCI_INDEX if "manifests" in manifest else MEDIA_OCI_MANIFEST
    return manifest, media_type


def parse_platform(text: str | None) -> tuple[str, str, str | None]:
    """``"linux/arm64/v8"`` -> ``("linux", "arm64", "v8")``; None -> this machine."""
    if not text:
        arch = host_architecture()
        return "linux", arch, {"arm": "v7"}.get(arch)
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidInput(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def choose_platform(index: dict, what: str, platform: str | None = None) -> dict:
    """The entry of a manifest list / OCI index for ``platform`` (default: this
    machine, ``linux/<architecture>``): each entry names its ``platform``."""
    os_name, arch, variant = parse_platform(platform)
    candidates = []
    for entry in index.get("manifests") or []:
        p = entry.get("platform") or {}
        if p.get("os") == os_name and p.get("architecture") == arch:
            candidates.append(entry)
    if variant:
        exact = [e for e in candidates if e["platform"].get("variant") == variant]
        candidates = exact or candidates
    if not candidates:
        wanted = f"{os_name}/{arch}" + (f"/{variant}" if variant and platform else "")
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    _check_descriptor(candidates[0], f"{what} (platform manifest)")
    return candidates[0]


def resolve_image_manifest(registry: Registry, repo: str, ref: str, what: str,
                           platform: str | None = None):
    """Fetch the manifest for ``ref``; follow an index to this platform's manifest.
    Returns ``(image manifest dict, top-level digest)``."""
    try:
        body, media_type, top_digest = fetch_manifest(registry, repo, ref)
    except NotFound as e:
        # "GET <url>: manifest unknown: manifest unknown" -> Docker's wording
        reason = str(e).split(": ", 1)[-1]
        raise NotFound(f"manifest for {what} not found: {reason}") from None
    manifest, media_type = parse_manifest(body, media_type, what)
    if media_type in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST) or "manifests" in manifest:
        entry = choose_platform(manifest, what, platform)
        body, media_type, _ = fetch_manifest(registry, repo, entry["digest"])
        if len(body) != entry["size"]:
            raise digests.DigestMismatch(f"manifest {entry['digest']}: size {len(body)}, "
                                         f"the index says {entry['size']}")
        manifest, media_type = parse_manifest(body, media_type, what)
    if media_type not in (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST):
        raise InvalidInput(f"{what}: unsupported manifest media type {media_type!r}")
    _check_descriptor(manifest.get("config"), f"{what}: config")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise InvalidInput(f"{what}: manifest has no layers list")
    for layer in layers:
        _check_descriptor(layer, f"{what}: layer")
        if layer.get("mediaType") not in LAYER_TYPES:
            raise InvalidInput(f"{what}: unsupported layer media type {layer.get('mediaType')!r}")
    return manifest, top_digest


def pull(ref: str, store=None, out=None, quiet: bool = False, platform: str | None = None,
         progress: Progress | None = None, credentials: tuple[str, str] | None = None) -> str:
    """Pull ``ref`` (``NAME[:TAG|@DIGEST]``) into ``store``; print progress to ``out``
    (or report it to ``progress``: the Engine API sends it as JSON); return the image
    id. This is what ``minidocker pull`` and ``run`` (for a missing image) call.
    ``platform`` (``os/arch[/variant]``) picks from a multi-arch index."""
    store = store or Store()
    r = _reference(ref)
    progress = progress or Progress(_out(out), quiet=quiet)
    registry = _registry_for(r, credentials)
    wanted = r.digest or r.tag
    registry.login([f"repository:{r.path}:pull"])
    if platform:
        parse_platform(platform)                  # a bad value fails before any request
    manifest, top_digest = resolve_image_manifest(registry, r.path, wanted, r.familiar(), platform)
    progress.message(f"Pulling from {r.path}", id=wanted)
    config_bytes = _fetch_small_blob(registry, r.path, manifest["config"], MAX_CONFIG, "config")
    try:
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{r.familiar()}: the image config is not valid (no rootfs.diff_ids)") from None
    if len(diff_ids) != len(manifest["layers"]):
        raise InvalidInput(f"{r.familiar()}: the manifest has {len(manifest['layers'])} layers "
                           f"but the config {len(diff_ids)} diff_ids")
    # The image id is the digest of the config *as the registry has it* (Docker's rule):
    # the config is stored byte for byte, so the id is the same on every machine.
    image_id = manifest["config"]["digest"]
    up_to_date = store.has_image(image_id)
    if not up_to_date:
        layers = _fetch_layers(store, registry, r, manifest["layers"], diff_ids, progress)
        config_is_new = not store.has_blob(image_id)
        try:
            store.put_blob(config_bytes, expected=image_id)
            store.record_image(image_id, layers)
        except BaseException:
            config_record = {"digest": image_id, "_new_blob": config_is_new}
            _forget_new_layers(store, layers + [config_record])
            raise
        remember_sources(store, [layer["digest"] for layer in layers], r.name)
    name = store.tag(image_id, str(r), event=False)
    store.emit(r.familiar(), "pull", r.familiar_name)
    progress.message(f"Digest: {top_digest}")
    status = "Image is up to date" if up_to_date else "Downloaded newer image"
    progress.message(f"Status: {status} for {name}")
    return image_id


def _fetch_layers(store, registry, r, descriptors, diff_ids, progress) -> list[dict]:
    """Every layer into the store: present ones reused, the others downloaded in
    parallel. All or nothing: on any failure, the layers this call added go again."""
    results: list[dict | None] = [None] * len(descriptors)
    to_fetch, first_of = [], {}
    for i, (desc, diff_id) in enumerate(zip(descriptors, diff_ids)):
        known = store.diff_id_of_blob(desc["digest"])
        if store.has_blob(desc["digest"]) and known == diff_id and store.has_layer(diff_id):
            progress.update(short_id(desc["digest"]), "Already exists")
            results[i] = _layer_record(desc, diff_id, new=False)
        elif desc["digest"] not in first_of:     # the same layer twice: fetch it once
            first_of[desc["digest"]] = i
            progress.update(short_id(desc["digest"]), "Pulling fs layer")
            to_fetch.append(i)
    cancel = threading.Event()
    errors: list[BaseException] = []

    def fetch(i):
        if cancel.is_set():
            return
        try:
            results[i] = _fetch_one_layer(store, registry, r.path, descriptors[i], diff_ids[i],
                                          progress, cancel)
        except BaseException as e:
            cancel.set()              # the other downloads stop at their next read
            errors.append(e)

    pool = ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS)
    try:
        list(pool.map(fetch, to_fetch))
    except BaseException as e:          # Ctrl-C: stop the downloads, then undo
        cancel.set()
        errors.insert(0, e)
    finally:
        pool.shutdown(wait=True)
    if errors:
        _forget_new_layers(store, [x for x in results if x])
        real = [e for e in errors if "pull cancelled" not in str(e)] or errors
        raise real[0]
    for i, desc in enumerate(descriptors):
        if results[i] is None:
            twin = results[first_of[desc["digest"]]]
            results[i] = dict(twin, _new_blob=False, _new_layer=False)
            if twin["diff_id"] != diff_ids[i]:
                _forget_new_layers(store, [x for x in results if x])
                raise digests.DigestMismatch(f"layer {desc['digest']} is listed twice with "
                                             "different diff_ids in the image config")
    return results


def _layer_record(desc, diff_id, new, existed_blob=True, existed_layer=True):
    return {"mediaType": LAYER_TYPE_TO_OCI.get(desc["mediaType"], desc["mediaType"]),
            "digest": desc["digest"], "size": desc["size"], "diff_id": diff_id,
            "_new_blob": new and not existed_blob, "_new_layer": new and not existed_layer}


def _fetch_one_layer(store, registry, repo, desc, diff_id, progress, cancel) -> dict:
    """Stream one layer blob from the registry into ``store.add_layer``: the bytes are
    hashed on the way (digest, size) and the store checks the digest again before it
    keeps the blob; it extracts the tar, hashing the uncompressed stream: the diff_id."""
    layer_id = short_id(desc["digest"])
    existed_blob = store.has_blob(desc["digest"])
    existed_layer = store.has_layer(diff_id)
    url = f"/v2/{repo}/blobs/{desc['digest']}"
    r = registry.request("GET", url, stream=True)
    body = _Body(r, f"layer {desc['digest']}")
    try:
        def on_progress(count, done):
            if not done:
                progress.update(layer_id, "Downloading", count, desc["size"])
            elif count == desc["size"]:   # all in; the store now checks and extracts it
                progress.update(layer_id, "Download complete")

        def on_retry(delay):              # Docker's words, rounded up to a whole second
            seconds = max(1, -int(-delay // 1))
            progress.update(layer_id, f"Retrying in {seconds} second{'s' if seconds > 1 else ''}")

        body = _Body(r, f"layer {desc['digest']}", cancel, on_progress,
                     reopen=_reopener(registry, url), on_retry=on_retry)
        stream = digests.VerifyingReader(body, desc["digest"], desc["size"], "layer",
                                         check_digest=False)
        try:
            added = store.add_layer(stream, media_type=desc["mediaType"], expected=desc["digest"])
        except digests.DigestMismatch:
            raise
        except InvalidInput as e:
            if "digest mismatch" in str(e):      # the store's check: say what it means
                raise digests.DigestMismatch(f"layer {desc['digest']}: content does not match "
                                             f"its digest ({e})") from None
            raise InvalidInput(f"layer {desc['digest']}: {e}" if desc["digest"] not in str(e)
                               else str(e)) from None
    finally:
        r.close()
        body.response.close()             # a resumed download's last response
    record = _layer_record(desc, added["diff_id"], True, existed_blob, existed_layer)
    if added["diff_id"] != diff_id:
        _forget_new_layers(store, [record])
        raise digests.DigestMismatch(f"layer {desc['digest']}: its content unpacks to "
                                     f"{added['diff_id']}, the image config says {diff_id}")
    progress.update(layer_id, "Pull complete")
    return record


def _forget_new_layers(store, records) -> None:
    """Undo ``add_layer`` for the blobs and layer dirs this pull created (and only
    those: what was there before stays, even if no image uses it)."""
    store.discard_unreferenced(
        blob_digests=[rec["digest"] for rec in records if rec.get("_new_blob")],
        diff_ids=[rec["diff_id"] for rec in records if rec.get("_new_layer")])


# =========================================================================== push
def _with_query(url: str, **params) -> str:
    """Add parameters to a Location, which may already carry a query (``_state=...``)."""
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


class _FileSlice:
    """``length`` bytes of ``path`` from ``offset``, readable and rewindable, with a
    length (so requests sends a Content-Length) and progress callbacks."""

    def __init__(self, path, offset, length, on_progress=None):
        self.f = open(path, "rb")
        self.offset, self.length = offset, length
        self.on_progress = on_progress
        self.seek(0)

    def seek(self, pos, whence=0):
        self.f.seek(self.offset + pos)
        self.done = pos

    def __len__(self):
        return self.length

    def read(self, n=-1):
        left = self.length - self.done
        if n is None or n < 0 or n > left:
            n = left
        data = self.f.read(min(n, READ_CHUNK * 4))
        self.done += len(data)
        if self.on_progress:
            self.on_progress(self.done)
        return data

    def close(self):
        self.f.close()


def blob_exists(registry: Registry, repo: str, digest: str) -> bool:
    r = registry.request("HEAD", f"/v2/{repo}/blobs/{digest}", expect=(200, 404))
    r.close()
    return r.status_code == 200


def mount_blob(registry: Registry, repo: str, digest: str, source: str) -> bool:
    """Cross-repository mount; True if the registry linked it (201), False if it
    opened an upload instead (202: it could not mount; that session is cancelled)."""
    r = registry.request("POST", "/v2/" + repo + "/blobs/uploads/?" +
                         urlencode({"mount": digest, "from": source}), expect=(201, 202))
    r.close()
    if r.status_code == 202 and r.headers.get("Location"):
        registry.request("DELETE", r.headers["Location"], expect=(204, 404, 405, 202)).close()
    return r.status_code == 201


def upload_blob(registry: Registry, repo: str, path: str, digest: str, size: int,
                chunk_size: int | None = None, on_progress=None) -> None:
    """Upload one blob: monolithic (one PUT), or chunked (PATCHes of ``chunk_size``,
    each with ``Content-Range``, then a PUT with no body). The registry answers each
    PATCH with the Location to use next."""
    r = registry.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
    r.close()
    location = r.headers.get("Location")
    if not location:
        raise MinidockerError(f"{registry.host}: upload started without a Location")
    headers = {"Content-Type": "application/octet-stream"}
    if chunk_size and size > chunk_size:
        offset = 0
        while offset < size:
            length = min(chunk_size, size - offset)
            body = _FileSlice(path, offset, length,
                              on_progress and (lambda n, o=offset: on_progress(o + n)))
            try:
                r = registry.request("PATCH", location, expect=(202,), data=body, headers={
                    **headers, "Content-Range": f"{offset}-{offset + length - 1}",
                    "Content-Length": str(length)})
            finally:
                body.close()
            r.close()
            location = r.headers.get("Location") or location
            offset += length
        r = registry.request("PUT", _with_query(location, digest=digest), expect=(201,),
                             data=b"", headers={**headers, "Content-Length": "0"})
    else:
        body = _FileSlice(path, 0, size, on_progress)
        try:
            r = registry.request("PUT", _with_query(location, digest=digest), expect=(201,),
                                 data=body, headers={**headers, "Content-Length": str(size)})
        finally:
            body.close()
    r.close()


def push(ref: str, store=None, out=None, chunk_size: int | None = None,
         quiet: bool = False, progress: Progress | None = None,
         credentials: tuple[str, str] | None = None) -> str:
    """Push the local image ``ref`` to its registry; return the manifest digest.
    ``progress`` and ``credentials`` as for :func:`pull`."""
    store = store or Store()
    r = _reference(ref)
    if r.digest:
        raise InvalidInput("cannot push a digest reference")
    try:
        image_id = store.resolve(str(r))
    except NotFound:
        raise NotFound(f"An image does not exist locally with the tag: {r.familiar_name}") from None
    manifest = store.image_manifest(image_id)
    progress = progress or Progress(_out(out), quiet=quiet)
    progress.message(f"The push refers to repository [{r.name}]")
    registry = _registry_for(r, credentials)
    layers = manifest["layers"]
    # Mount sources must be readable too: ask for all scopes in one token.
    sources = {d["digest"]: [s.split("/", 1)[1] for s in known_sources(store, d["digest"])
                             if s.split("/", 1)[0] == r.domain and s != r.name]
               for d in layers + [manifest["config"]]}
    source_repos = sorted({s for repos in sources.values() for s in repos[:1]})
    registry.login([f"repository:{r.path}:pull,push"] +
                   [f"repository:{s}:pull" for s in source_repos])
    for desc in reversed(layers):                 # Docker lists the top layer first
        progress.update(short_id(desc["digest"]), "Preparing")   # (a repeat: same line)

    def push_blob(desc, show=True):
        layer_id = short_id(desc["digest"])
        say = progress.update if show else (lambda *a, **k: None)
        if blob_exists(registry, r.path, desc["digest"]):
            say(layer_id, "Layer already exists")
            return
        for source in sources.get(desc["digest"], [])[:1]:
            if mount_blob(registry, r.path, desc["digest"], source):
                say(layer_id, f"Mounted from {source}")
                return
        upload_blob(registry, r.path, store.blob_path(desc["digest"]), desc["digest"],
                    desc["size"], chunk_size,
                    lambda n: say(layer_id, "Pushing", n, desc["size"]))
        say(layer_id, "Pushed")
        from ..crashpoint import reached
        reached("blob-pushed")

    errors = []

    def guarded(desc):
        try:
            push_blob(desc)
        except BaseException as e:
            errors.append(e)

    unique = list({d["digest"]: d for d in layers}.values())   # a repeated layer goes once
    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(guarded, unique))
    if errors:
        raise errors[0]
    config = manifest["config"]
    push_blob(config, show=False)             # Docker shows no line for the config
    body = canonical_json(manifest)
    media_type = manifest.get("mediaType") or MEDIA_OCI_MANIFEST
    resp = registry.request("PUT", f"/v2/{r.path}/manifests/{r.tag}", expect=(200, 201, 202),
                            data=body, headers={"Content-Type": media_type})
    resp.close()
    digest = digests.digest_bytes(body)
    remote = resp.headers.get("Docker-Content-Digest")
    if remote and remote != digest:
        raise MinidockerError(f"the registry stored the manifest as {remote}, expected {digest}")
    remember_sources(store, [d["digest"] for d in layers] + [config["digest"]], r.name)
    progress.message(f"{r.tag}: digest: {digest} size: {len(body)}")
    store.emit(r.familiar(), "push", r.familiar_name)
    return digest
