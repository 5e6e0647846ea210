"""Containers on disk: one directory per container, one ``state.json`` per directory.

``$ROOT/containers/<64-hex id>/`` holds everything minidocker knows about a container::

    state.json        what ``inspect`` prints (Docker's field names), and fields whose
                      names start with ``_``, which it leaves out (``_MountSpecs``:
                      -v, --mount and --tmpfs as ``create`` parsed them)
    init/             the engine's mount points (/dev, /proc, /sys, /etc/hosts...), the
                      overlay's top lowerdir: Docker's <id>-init layer (engine/overlay.py)
    upper/ work/      the overlay's writable layer and its scratch dir (``diff`` reads upper/)
    bundle/           the OCI runtime bundle: config.json + rootfs/ (overlay mount point)
    hostname hosts resolv.conf   bind-mounted over the container's /etc files
    container.log     what the container printed, one JSON object per line
    monitor.lock      held (flock) by the process that runs the container while it lives

This module creates, finds, lists and removes those records; :mod:`.lifecycle` and
:mod:`.monitor` run them.
"""

from __future__ import annotations

import fcntl
import os
import re

from .. import clock, paths, scratch
from ..errors import Conflict, InvalidInput, MinidockerError, NotFound
from .names import random_name

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def containers_dir() -> str:
    return os.path.join(paths.data_root(), "containers")


def now_iso() -> str:
    return clock.rfc3339()


class Container:
    """A container record: its directory and the parsed ``state.json``."""

    def __init__(self, cid: str, state: dict | None = None):
        self.id = cid
        self.dir = os.path.join(containers_dir(), cid)
        self.state = state if state is not None else paths.read_json(self.state_path)

    # -- where things are
    @property
    def state_path(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def upper_dir(self) -> str:
        return os.path.join(self.dir, "upper")

    @property
    def work_dir(self) -> str:
        return os.path.join(self.dir, "work")

    @property
    def bundle(self) -> str:
        return os.path.join(self.dir, "bundle")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.bundle, "rootfs")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "container.log")

    @property
    def name(self) -> str:
        return self.state["Name"]

    @property
    def image_id(self) -> str:
        return self.state["Image"]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def cgroup(self) -> str:
        """The container's cgroup, from each hierarchy's root: the bundle's
        ``cgroupsPath`` (absolute, as runc reads it), and what ``rm`` removes."""
        return f"/minidocker/{self.id}"

    # -- state
    def reload(self) -> "Container":
        self.state = paths.read_json(self.state_path)
        return self

    def save(self) -> None:
        paths.write_json(self.state_path, self.state)

    def locked(self):
        """The container's lock: held by every read-modify-write of its state.json."""
        return paths.locked(f"container-{self.id}")

    def update(self, state: dict | None = None, **fields) -> None:
        """Under the container's lock (the monitor and a ``stop`` may write at the same
        time): re-read state.json, replace the top-level sections ``fields``
        (``NetworkSettings``...), change the ``State`` fields in ``state``, and write it
        back, keeping what other processes wrote meanwhile (``Mounts``). One write (and
        one fsync) for the lot, and none when nothing changes."""
        with self.locked():
            self.reload()
            state = state or {}
            if all(self.state.get(k) == v for k, v in fields.items()) and \
                    all(self.state["State"].get(k) == v for k, v in state.items()):
                return
            self.state.update(fields)
            self.state["State"].update(state)
            self.save()

    def update_state(self, **fields) -> None:
        """Change ``State`` fields (see :meth:`update`)."""
        self.update(state=fields)

    def update_fields(self, **fields) -> None:
        """Replace top-level sections (see :meth:`update`)."""
        self.update(**fields)

    @property
    def status(self) -> str:
        return self.state["State"]["Status"]

    def emit(self, action: str, **extra) -> None:
        """Log a container event (``docker events``): the container's labels, the image
        as the user named it and the name, plus ``extra`` (``exitCode``, ``signal``)."""
        from .. import events
        cfg = self.state.get("Config") or {}
        events.emit("container", action, self.id, events.container_attributes(
            self.state.get("Name", ""), cfg.get("Image") or self.state.get("Image", ""),
            cfg.get("Labels"), **extra))

    def monitor_alive(self) -> bool:
        """True while a monitor process holds ``monitor.lock`` (the container is running)."""
        path = os.path.join(self.dir, "monitor.lock")
        if not os.path.exists(path):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def wait_for_monitor(self, timeout: float | None = None) -> bool:
        """Wait until the monitor process exits (its flock is released); False if it
        still runs after ``timeout`` seconds (None: no bound, for ``docker wait``)."""
        path = os.path.join(self.dir, "monitor.lock")
        if not os.path.exists(path):
            return True
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_SH)
                return True
            import time
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.02)
        finally:
            os.close(fd)

    def monitor_pids(self) -> list[int]:
        """The process(es) holding ``monitor.lock``: the container's monitor."""
        return paths.lock_holders(os.path.join(self.dir, "monitor.lock"))


# --------------------------------------------------------------------------- lookup
def list_containers() -> list[Container]:
    """Every container, newest first."""
    base = containers_dir()
    found = []
    for cid in os.listdir(base) if os.path.isdir(base) else ():
        try:
            found.append(Container(cid))
        except (FileNotFoundError, ValueError):
            continue  # being created or removed right now
    found.sort(key=lambda c: c.state.get("Created", ""), reverse=True)
    return found


def resolve(ref: str) -> Container:
    """Find a container by name, full id or unique id prefix, as Docker does."""
    ref = ref.lstrip("/")
    all_ = list_containers()
    for c in all_:
        if c.id == ref or c.name == ref:
            return c
    matches = [c for c in all_ if c.id.startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise MinidockerError(f"multiple IDs found with provided prefix: {ref}")
    raise NotFound(f"No such container: {ref}")


def users_of(image_id: str) -> list[Container]:
    """Containers made from ``image_id`` (an image they use cannot be removed)."""
    return [c for c in list_containers() if c.image_id == image_id]


# --------------------------------------------------------------------------- creation
def new_id() -> str:
    """A container id: 64 random hex digits, like Docker's (``secrets.token_hex(32)``
    is the same ``os.urandom``, but importing ``secrets`` costs ~4 ms)."""
    return os.urandom(32).hex()


def new_record(name: str | None, state: dict, cid: str | None = None) -> Container:
    """Reserve an id and a name and write the first ``state.json`` (Status ``created``).

    The name check and the directory creation happen under one lock, so two ``run
    --name x`` at once cannot both get ``x``.
    """
    if name is not None and not NAME_RE.match(name):
        raise InvalidInput(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    with paths.locked("containers"):
        existing = list_containers()
        taken = {c.name: c for c in existing}
        if name is not None:
            name = name.lstrip("/")
            if name in taken:
                other = taken[name].id
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f'container "{other}". You have to remove (or rename) that '
                               f'container to be able to reuse that name.')
        else:
            name = random_name(set(taken))
        cid = cid or new_id()
        c = Container(cid, state={**state, "Id": cid, "Name": name, "Created": now_iso()})
        # Made whole in scratch, then renamed into place: a create killed half-way
        # leaves no container without its state.json (it would be invisible, and
        # never removed), only scratch of a dead owner.
        staging = scratch.mkdtemp(paths.data_root(), "new-container")
        try:
            for d in ("upper", "work", "bundle/rootfs"):
                os.makedirs(os.path.join(staging, d))
            paths.write_json(os.path.join(staging, "state.json"), c.state)
            os.makedirs(os.path.dirname(c.dir), exist_ok=True)
            os.rename(staging, c.dir)     # mkdtemp made it 0700, as a container dir is
        except BaseException:
            scratch.remove_tree(staging)
            raise
    return c


def delete_record(c: Container) -> None:
    """Remove the container's directory (its mounts must be gone already).

    It is renamed into scratch first (:func:`minidocker.scratch.discard`): the
    container disappears in one step, so an ``rm`` killed while deleting its files
    leaves no half-deleted container behind, only scratch that the next sweep removes."""
    scratch.discard(paths.data_root(), c.dir, "deleted-container")
