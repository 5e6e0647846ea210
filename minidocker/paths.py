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
    $ROOT/networks/<name>/            network.json, and leases.json once it hands out addresses (network);
                                      on a user-defined network, dns.json (its DNS server's pid and
                                      address, while one runs) and dns.log (network/dns.py)
    $ROOT/networks/ports.json         host ports published by containers (network)
    $ROOT/runtimes/<name>/            a runtime binary's --root, for run --runtime NAME (engine)
    $ROOT/locks/<name>                files that paths.locked takes a flock on
    $ROOT/tmp/                        scratch space on the same filesystem, for atomic renames;
                                      each name says which process owns it (minidocker.scratch)
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
import time

from .errors import MinidockerError

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
    # The name says who writes it: a writer killed before the rename leaves a file
    # that ``system check`` can tell from one being written right now.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".tmp-{owner_tag()}-")
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


_owner: tuple[int, str] | None = None


def owner_tag() -> str:
    """``<pid>-<start time>`` of this process, what scratch names and ``write_atomic``'s
    temporary files carry to say who made them (:mod:`minidocker.scratch`). The start
    time is field 22 of ``/proc/self/stat`` (:func:`minidocker.kernel.processes.start_time`
    reads any process's; this bottom layer cannot import the kernel layer). Cached: a
    forked child computes its own."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:
        try:
            with open("/proc/self/stat") as f:
                start = f.read().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            start = "0"
        _owner = (pid, f"{pid}-{start}")
    return _owner[1]


def write_json(path: str, obj, durable: bool = True) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", durable=durable)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


#: How long a command waits for a lock another live command holds, before it gives up
#: with an error naming the holder (no command holds one for long: see :class:`locked`).
LOCK_TIMEOUT = 60.0


class locked:
    """Hold an exclusive ``flock`` on ``$ROOT/locks/<name>`` for the ``with`` block.

    Several minidocker commands may run at once (two ``run``s, a ``run`` and an
    ``rmi``); every read-modify-write of shared state (tags, address leases, the list of
    containers using an image) happens under such a lock. ``flock`` locks die with the
    process, so a crashed command never leaves the store locked.

    Waiting has a bound (``timeout``, default :data:`LOCK_TIMEOUT`): a holder that
    never lets go (stopped with SIGSTOP, stuck in the kernel) makes us fail with a
    one-line error naming it, never hang. ``shared=True`` takes a shared lock (many
    holders at once, none while someone holds it exclusively).
    """

    def __init__(self, name: str, root: str | None = None, shared: bool = False,
                 timeout: float | None = None):
        self.path = os.path.join(root or data_root(), "locks", name)
        self.name = name
        self.shared = shared
        self.timeout = LOCK_TIMEOUT if timeout is None else timeout

    def __enter__(self):
        self.fd = acquire_flock(self.path, shared=self.shared, timeout=self.timeout,
                                what=f"the '{self.name}' lock")
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def acquire_flock(path: str, shared: bool = False, timeout: float = LOCK_TIMEOUT,
                  what: str = "a lock") -> int:
    """Open ``path`` (made if missing) and ``flock`` it, waiting at most ``timeout``
    seconds; returns the fd, which holds the lock until it is closed. Polls with a
    non-blocking ``flock`` (a blocking one cannot be given a deadline without signals)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    how = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            holders = lock_holders(path)
            os.close(fd)
            who = f" (held by pid {', '.join(map(str, holders))})" if holders else ""
            raise MinidockerError(f"timed out after {timeout:g}s waiting for {what}{who}")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def lock_holders(path: str) -> list[int]:
    """The pids holding a ``flock`` on ``path``, from ``/proc/locks`` (its lines name
    each lock's holder and the device and inode of the locked file)."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->"
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == want and fields[4].isdigit():
            holders.append(int(fields[4]))
    return sorted(set(holders))
