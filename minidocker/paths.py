"""Where minidocker keeps its state: one data root a learner can ``ls`` and ``cat``.

Layout (each part is owned by one package; a directory is made when first needed)::

    $ROOT/blobs/sha256/<hex>          content-addressed blobs: layer tars, configs, manifests (image)
    $ROOT/layers/<diff_id hex>/       each layer extracted once, used as an overlay lowerdir (image)
    $ROOT/layerdb/<diff_id hex>.json  what is known about a layer: its diff_id and size (image)
    $ROOT/layerdb/blobs/<hex>         which diff_id a (compressed) layer blob unpacks to (image)
    $ROOT/images/<id hex>.json        one record per image: its manifest (image)
    $ROOT/repositories.json           tags: {"busybox:latest": "sha256:..."} (image)
    $ROOT/distribution/blob-sources.json   the repositories each blob was pulled from or pushed to (registry)
    $ROOT/buildcache/<key hex>        the step cache: the image id a build step made (build)
    $ROOT/containers/<id>/            one dir per container (engine): state.json, init/ (the
                                      engine's mount points, the overlay's top lowerdir),
                                      upper/, work/, bundle/ (config.json, rootfs/), hostname,
                                      hosts, resolv.conf, container.log, monitor.lock
    $ROOT/volumes/<name>/             a named volume: _data/ and volume.json (engine)
    $ROOT/networks/<name>/            network.json, and leases.json once it hands out addresses (network)
    $ROOT/networks/ports.json         host ports published by containers (network)
    $ROOT/runc/                       runc's own state, for run --runtime runc (engine)
    $ROOT/locks/<name>                files that paths.locked takes a flock on
    $ROOT/tmp/                        scratch space on the same filesystem, for atomic renames
    $ROOT/events.jsonl                what happened, one event a line (events); .1: the older part

Outside the root, in ``/run/minidocker`` (a tmpfs, so they go with a reboot, like the
containers they describe), are the host-wide claims that several data roots share::

    /run/minidocker/bridges/<bridge>          which data root and network made a Linux bridge (network)
    /run/minidocker/addresses/<bridge>/<ip>   who holds an address on a bridge (network)

The root is ``--root DIR``, else ``$MINIDOCKER_ROOT``, else ``/var/lib/minidocker``.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile

DEFAULT_ROOT = "/var/lib/minidocker"


def data_root() -> str:
    return os.path.abspath(os.environ.get("MINIDOCKER_ROOT") or DEFAULT_ROOT)


def write_atomic(path: str, data: bytes | str, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``path`` so that readers see the old content or the new, never a mix:
    write a temporary file in the same directory, fsync it, then ``rename`` over the
    target (a rename within one filesystem is atomic).

    Without the fsync a crash could leave the *new name* with not-yet-written data
    (an empty file). ``durable=False`` skips it, for files that are made again from
    other records whenever they are used (a bundle's config.json)."""
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str, obj, durable: bool = True) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", durable=durable)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


class locked:
    """Hold an exclusive ``flock`` on ``$ROOT/locks/<name>`` for the ``with`` block.

    Several minidocker commands may run at once (two ``run``s, a ``run`` and an
    ``rmi``); every read-modify-write of shared state (tags, address leases, the list of
    containers using an image) happens under such a lock. ``flock`` locks die with the
    process, so a crashed command never leaves the store locked.
    """

    def __init__(self, name: str, root: str | None = None):
        self.path = os.path.join(root or data_root(), "locks", name)

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False
