"""The runtime's memory between commands: one directory per container under ``--root``.

``runc create`` exits while the container lives on, and ``runc start``, ``state``,
``kill`` and ``delete`` are new processes that know nothing but the container's id.
Whatever they need is written down at ``create``, as runc does it::

    /run/minidocker-runtime/          --root (a tmpfs: forgotten at reboot, like the processes)
      <id>/
        state.json                    pid, its start time, bundle, cgroup, the config...
        exec.fifo                     exists while the container is "created" (see below)

The *status* is never stored: it is worked out each time from the kernel, because a
process may die at any moment without telling anyone (OCI runtime spec, "State"):

* ``stopped``: the init's pid is gone, is a zombie, or is now another process (pids
  are reused: the init's start time must match, see :mod:`minidocker.kernel.processes`);
* ``paused``: the container's cgroup is frozen (``pause``);
* ``created``: ``exec.fifo`` still exists: the init is blocked opening it, before
  ``execve`` (``start`` removes it);
* ``running`` otherwise.

Two commands on one container at once (``kill`` while ``delete`` runs) must not
trip over each other: each takes an exclusive ``flock`` on the container's directory
for as long as it works on it, and ``state.json`` is replaced atomically (a new file
renamed over the old one), so a reader never sees half of it. A command that got the
lock after ``delete`` removed the directory finds it unlinked and says the container
does not exist.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re

from ..errors import Conflict, InvalidInput, NotFound
from ..kernel import cgroups, processes

#: runc's default is /run/runc; ours sits beside it, so the two never mix.
DEFAULT_ROOT = "/run/minidocker-runtime"

STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"

#: The statuses of the OCI runtime spec ("State": ``status``).
CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"

#: runc's rule for container ids (libcontainer ``validateID``): no slashes, no dots
#: alone, nothing that could escape the state directory.
_ID = re.compile(r"^[\w+\-.]+$")


def check_id(container_id: str) -> str:
    """Refuse an id that is not a plain file name (``../x``, ``a/b``, ``.``)."""
    if not container_id or not _ID.match(container_id) or container_id in (".", ".."):
        raise InvalidInput(f"invalid container id format: {container_id}")
    return container_id


class ContainerState:
    """One container's directory, locked while the object is used as a context manager.

    ``data`` is ``state.json`` as a dict (see :func:`new_state`).
    """

    def __init__(self, root: str, container_id: str):
        self.root = root
        self.id = check_id(container_id)
        self.dir = os.path.join(root, container_id)
        self.data: dict = {}
        self._fd: int | None = None

    # -- paths
    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, FIFO_NAME)

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, STATE_FILE)

    # -- locking
    def make(self) -> "ContainerState":
        """Create the directory (the id must be new) and lock it (for ``create``)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise Conflict(f"container with id exists: {self.id}") from None
        self.lock()
        return self

    def open(self) -> "ContainerState":
        """Lock an existing container's directory and read ``state.json``."""
        try:
            self.lock()
        except FileNotFoundError:
            raise NotFound("container does not exist") from None
        if os.fstat(self._fd).st_nlink == 0:
            # ``delete`` removed the directory while we waited for its lock.
            self.close()
            raise NotFound("container does not exist")
        try:
            with open(self.state_file) as f:
                self.data = json.load(f)
        except (FileNotFoundError, ValueError):
            # A directory without a readable state: a create that died half-way.
            self.close()
            raise NotFound("container does not exist") from None
        return self

    def lock(self) -> None:
        """Take the exclusive lock on the directory (waits for whoever holds it)."""
        self._fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last fd of the lock releases it
            self._fd = None

    def __enter__(self) -> "ContainerState":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading and writing
    def save(self) -> None:
        """Replace ``state.json`` atomically (write a new file, then rename it)."""
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.rename(tmp, self.state_file)

    def remove(self) -> None:
        """Delete the directory and what is in it (``delete``), keeping the lock until
        the directory is gone."""
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    # -- what the kernel says
    def init_alive(self) -> bool:
        pid = self.data.get("pid")
        return bool(pid) and processes.is_alive(pid, self.data.get("init_start_time"))

    def status(self, cgroup=None) -> str:
        """``created``, ``running``, ``paused`` or ``stopped`` (see the module doc).
        ``cgroup`` (a :class:`minidocker.kernel.cgroups.Cgroup`) saves opening it."""
        if not self.init_alive():
            return STOPPED
        if cgroup is None:
            cgroup = self.cgroup()
        if cgroup is not None and cgroup.is_frozen():
            return PAUSED
        if os.path.exists(self.fifo):
            return CREATED
        return RUNNING

    def own_pid_namespace(self) -> bool:
        """True when the config gives the container a new PID namespace (its init is
        PID 1 there, and when it dies the kernel kills every other process in it)."""
        namespaces = (self.data.get("config") or {}).get("linux", {}).get("namespaces", [])
        return any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)

    def cgroup(self):
        """The container's cgroup, or None if it has none."""
        if not self.data.get("cgroup"):
            return None
        cg = cgroups.open_cgroup(self.data["cgroup"])
        cg.owned = bool(self.data.get("cgroup_owned"))
        return cg

    def oci_state(self, owner: str = "") -> dict:
        """The state as ``runc state`` prints it (OCI runtime spec, "State"): the pid is
        0 once the container has stopped; ``annotations`` only when the config has some."""
        status = self.status()
        state = {
            "ociVersion": self.data.get("ociVersion", ""),
            "id": self.id,
            "pid": self.data.get("pid", 0) if status != STOPPED else 0,
            "status": status,
            "bundle": self.data.get("bundle", ""),
            "rootfs": self.data.get("rootfs", ""),
            "created": self.data.get("created", ""),
        }
        if self.data.get("annotations"):
            state["annotations"] = self.data["annotations"]
        state["owner"] = owner
        return state

    def owner_name(self) -> str:
        """The user owning the state directory, by name (``runc list``'s OWNER)."""
        uid = os.stat(self.dir).st_uid
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"#{uid}"


def new_state(spec: dict, bundle: str, rootfs: str, pid: int, created: str,
              cgroup=None) -> dict:
    """What ``create`` writes down for the commands after it.

    The whole config is kept: ``exec`` needs the container's capabilities and seccomp
    filter (a filter cannot be read back from a process), and the bundle's
    ``config.json`` may be edited or gone by then.
    """
    return {
        "ociVersion": spec.get("ociVersion", ""),
        "pid": pid,
        "init_start_time": processes.start_time(pid),
        "bundle": bundle,
        "rootfs": rootfs,
        "created": created,
        "annotations": spec.get("annotations") or {},
        "cgroup": cgroup.relpath if cgroup is not None else None,
        "cgroup_owned": bool(getattr(cgroup, "owned", False)),
        "config": spec,
    }


def list_ids(root: str) -> list[str]:
    """The ids of every container under ``root`` (in name order)."""
    try:
        return sorted(name for name in os.listdir(root)
                      if os.path.isdir(os.path.join(root, name)))
    except FileNotFoundError:
        return []
