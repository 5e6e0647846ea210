"""Control groups: limit and count what a group of processes may use.

Namespaces decide what a container can *see*; cgroups decide how much it can *use*.
A cgroup is a directory in a special filesystem (cgroupfs, mounted under
``/sys/fs/cgroup``). Making a directory makes a group; writing a pid into its
``cgroup.procs`` moves that process (all its threads) into the group, and every child
it forks afterwards is born there. The files next to ``cgroup.procs`` are the knobs
(``memory.max``, ``pids.max``, ...) and the meters (``memory.current``, ``cpu.stat``).
Kernel documentation: https://docs.kernel.org/admin-guide/cgroup-v2.html and, for the
older interface, https://docs.kernel.org/admin-guide/cgroup-v1/index.html.

There are two versions of this interface, and a container engine must speak both:

* **cgroup v1**: one tree (*hierarchy*) per controller, each mounted on its own:
  ``/sys/fs/cgroup/memory/``, ``/sys/fs/cgroup/pids/``, ``/sys/fs/cgroup/cpu/``... A
  container's group is one directory *in each tree* (``memory/minidocker/ID``,
  ``pids/minidocker/ID``, ...), and a process must be added to each of them. Several
  controllers may share one tree (often ``cpu,cpuacct``, with ``cpu`` and ``cpuacct``
  as symlinks to it).
* **cgroup v2**: a single tree for all controllers (``/sys/fs/cgroup/`` itself has a
  ``cgroup.controllers`` file). A controller only appears in a group when its parent
  lists it in ``cgroup.subtree_control``, and a group that hands controllers down to
  children may not hold processes itself (the *no internal processes* rule). So
  processes live in the leaves, and the inner groups only distribute resources.

Everything minidocker makes lives under a ``minidocker/`` parent at the root of each
hierarchy, never inside the cgroup the caller itself runs in: that one belongs to
the machine (systemd, a CI runner), and is neither moved nor changed here.

Only the standard library is used, so ``tools/cgroup`` runs from a plain checkout.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time

from ..errors import InvalidInput, MinidockerError
from . import processes

#: Where the cgroup filesystem(s) are mounted on every mainstream distribution.
DEFAULT_MOUNTPOINT = "/sys/fs/cgroup"

#: The parent group of every cgroup minidocker makes, at the root of each hierarchy.
PARENT = "minidocker"

#: cgroup v1 controllers a container gets a directory in. ``cpuset`` is left out on
#: purpose: a new v1 cpuset group starts with empty ``cpuset.cpus``/``cpuset.mems``,
#: and the kernel refuses to add a process to it until both are filled in.
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "blkio", "devices", "freezer")

#: cgroup v2 controllers minidocker enables for its groups (in ``subtree_control``).
V2_CONTROLLERS = ("cpu", "memory", "pids")

#: The CFS bandwidth period Docker uses: 100 ms. ``--cpus 0.5`` = 50 ms per 100 ms.
CFS_PERIOD_US = 100_000

#: The kernel refuses CFS quotas below 1 ms.
CFS_MIN_QUOTA_US = 1_000

#: v1 reports "no limit" as the largest page-aligned 64-bit number; anything this big
#: is treated as unlimited.
_UNLIMITED_V1 = 1 << 62


class CgroupError(MinidockerError, OSError):
    """A cgroup could not be made, changed, read or removed (one-line message).

    It is a :class:`MinidockerError` (the CLI prints it and exits 125) and also an
    ``OSError``, like every other refusal from the kernel layer, so that code cleaning
    up after a container can catch both kinds in one ``except OSError``."""


# --------------------------------------------------------------------------- small helpers
def parse_bytes(text: str) -> int:
    """``"32M"`` -> 33554432, with Docker's units for ``-m/--memory``.

    As in Docker (``units.RAMInBytes``): a number, an optional unit ``b k m g t p``
    (any case, powers of 1024) and an optional trailing ``b``/``ib``: ``512k``,
    ``1.5g``, ``64MB``, ``100000``.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgtp])?i?b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise InvalidInput(f"invalid size: {text!r} (use a number with an optional unit b, k, m, g)")
    unit = (m.group(2) or "b").lower()
    return int(float(m.group(1)) * 1024 ** "bkmgtp".index(unit))


def format_bytes(n: int | None) -> str:
    """33554432 -> ``"32M"``; 1572864 -> ``"1.5M"``; None -> ``"unlimited"``."""
    if n is None:
        return "unlimited"
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if n % size == 0 else f"{value:.1f}{unit}"
    return f"{n}B"


def cpu_quota_us(cpus: float, period_us: int = CFS_PERIOD_US) -> int:
    """How many microseconds of CPU time per period ``--cpus`` allows.

    CFS bandwidth control gives a group ``quota`` µs of CPU time in every ``period``
    µs, summed over all CPUs; when the group has used it up, its threads are not run
    again (they are *throttled*) until the next period starts. So ``--cpus 0.5`` is
    50 ms per 100 ms, and ``--cpus 2`` is 200 ms per 100 ms (two CPUs' worth).
    """
    return int(round(cpus * period_us))


def cpu_weight_from_shares(shares: int) -> int:
    """Convert v1 ``cpu.shares`` (2..262144, default 1024) to v2 ``cpu.weight`` (1..10000).

    This is the linear mapping runc and crun have used since cgroup v2 support
    (``1 + (shares - 2) * 9999 / 262142``): it maps the two ranges' ends onto each
    other, so Docker's default 1024 shares become weight 39, not v2's default 100.
    (Newer crun releases use a curved mapping that sends 1024 to 100; the linear one
    is kept here because it is what most installed runtimes write.)
    """
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def _read(path: str) -> str | None:
    """A cgroup file's text, or None when the file does not exist (controller absent)."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def _read_int(path: str) -> int | None:
    """A one-number file; None when missing, or when it says ``max`` (no limit)."""
    text = _read(path)
    if text is None or text.strip() in ("", "max"):
        return None
    return int(text.split()[0])


def _read_keyed(path: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` per line: ``cpu.stat``, ``memory.events``)."""
    values = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _write(path: str, value, what: str) -> None:
    """Write one value to one cgroup file, in one ``write(2)`` as the kernel expects.

    ``what`` says what the write was for, so that a refusal reads as something a user
    can act on ("cannot set memory limit: ...").
    """
    text = str(value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        if not os.path.exists(path):
            raise CgroupError(f"cannot {what}: {os.path.basename(path)} does not exist in "
                              f"{os.path.dirname(path)} (is that controller enabled?)") from None
        raise CgroupError(f"cannot {what}: open {path}: {e.strerror}") from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise CgroupError(f"cannot {what}: write {text!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _check_relpath(relpath: str) -> str:
    """A cgroup path relative to the hierarchy's root: no leading ``/``, no ``..``."""
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"invalid cgroup path {relpath!r}: '..' is not allowed")
    return "/".join(parts)


# --------------------------------------------------------------------------- opening
def detect_version(mountpoint: str = DEFAULT_MOUNTPOINT) -> int:
    """2 when ``mountpoint`` is a cgroup v2 (unified) tree, 1 for v1 per-controller trees.

    The root of a cgroup2 filesystem always has ``cgroup.controllers``; a v1 setup has a
    tmpfs there holding one mounted tree per controller instead. (A "hybrid" machine
    like the development VM has v1 trees and an extra cgroup2 at ``unified/`` with no
    controllers in it: that counts as v1, since the limits all live in the v1 trees.)
    """
    if os.path.exists(os.path.join(mountpoint, "cgroup.controllers")):
        return 2
    if any(os.path.isdir(os.path.join(mountpoint, c)) for c in V1_CONTROLLERS):
        return 1
    raise CgroupError(f"no cgroup filesystem found at {mountpoint}")


def open_cgroup(relpath: str, mountpoint: str = DEFAULT_MOUNTPOINT) -> "Cgroup":
    """The cgroup ``relpath`` (e.g. ``"minidocker/<id>"``) in whichever hierarchy the
    machine has. Nothing is made until :meth:`Cgroup.create`."""
    relpath = _check_relpath(relpath)
    if not relpath:
        raise InvalidInput("a cgroup path must name a group below the hierarchy's root")
    if detect_version(mountpoint) == 2:
        return CgroupV2(relpath, mountpoint)
    return CgroupV1({c: relpath for c in V1_CONTROLLERS}, mountpoint)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` -> ``{controller: path}``.

    Each line is ``ID:CONTROLLERS:PATH``. v1 trees have a list of controllers
    (``4:memory:/minidocker/abc``, ``2:cpu,cpuacct:/...``); the v2 tree is the line
    with ID 0 and no controllers (``0::/minidocker/abc``), returned under the key ``""``.
    Paths are relative to the reader's cgroup namespace root.
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def cgroup_of_pid(pid: int, mountpoint: str = DEFAULT_MOUNTPOINT) -> "Cgroup":
    """The cgroup a running process is in: how ``docker exec`` puts its new process
    into the container's groups (open this, then :meth:`Cgroup.add`)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            paths = parse_proc_cgroup(f.read())
    except FileNotFoundError:
        raise CgroupError(f"no such process: {pid}") from None
    if detect_version(mountpoint) == 2:
        return CgroupV2(_check_relpath(paths.get("", "/")), mountpoint)
    return CgroupV1({c: _check_relpath(paths[c]) for c in V1_CONTROLLERS if c in paths}, mountpoint)


# --------------------------------------------------------------------------- common part
class Cgroup:
    """One control group, in a v1 or a v2 hierarchy (see the subclasses)."""

    version = 0

    def __init__(self, relpath: str, mountpoint: str):
        self.relpath = relpath
        self.mountpoint = mountpoint

    def __repr__(self):
        return f"<cgroup v{self.version} {self.relpath!r} at {self.mountpoint}>"

    # Subclasses provide these.
    def dirs(self) -> list[str]:
        """The directories that make up this group (one per v1 tree; one in v2)."""
        raise NotImplementedError

    def path(self, controller: str) -> str | None:
        """The directory holding ``controller``'s files, or None if it is not mounted."""
        raise NotImplementedError

    def relpaths(self) -> list[str]:
        """The group's path(s) relative to the hierarchy root(s)."""
        raise NotImplementedError

    # -- shared behaviour
    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def _file(self, controller: str, name: str) -> str | None:
        directory = self.path(controller)
        return os.path.join(directory, name) if directory else None

    def _guard(self, action: str) -> None:
        """Refuse to kill or remove anything outside minidocker's own ``minidocker/``
        parent: the caller's cgroup belongs to the machine, never to us."""
        for rel in self.relpaths():
            parts = rel.split("/")
            if len(parts) < 2 or parts[0] != PARENT:
                raise CgroupError(f"refusing to {action} cgroup /{rel}: not below /{PARENT}/")

    def add(self, pid: int) -> None:
        """Move process ``pid`` (with all its threads) into this group.

        Writing a pid to ``cgroup.procs`` moves the whole thread group; what the
        process forks from then on starts in the same group. In v1 this must be done
        once per tree (memory, pids, cpu, ...); in v2 once.
        """
        for directory in self.dirs():
            _write(os.path.join(directory, "cgroup.procs"), pid, f"add process {pid} to {directory}")

    def join(self) -> None:
        """Move the calling process into this group; it must have one thread only
        (a process just forked by Python has: ``fork`` copies only the calling thread).

        Same effect as ``add(os.getpid())``, but cheaper. Moving a whole thread group
        (any write to ``cgroup.procs``, or another task's id to ``tasks``) takes the
        kernel's global ``cgroup_threadgroup_rwsem`` for writing, which waits for an RCU
        grace period: several milliseconds, once per v1 tree. Writing ``0`` (meaning
        "me") to ``tasks`` moves only the calling thread, which cannot exit or exec
        meanwhile, so the kernel skips that lock (``cgroup_procs_write_start``). In v2
        there is one tree and ``cgroup.procs`` is written once.
        """
        if self.version == 2:
            self.add(os.getpid())
            return
        for directory in self.dirs():
            _write(os.path.join(directory, "tasks"), 0, f"join {directory}")

    def pids(self, recursive: bool = False) -> list[int]:
        """The live processes in this group (from ``cgroup.procs``; sorted, no duplicates).

        ``cgroup.procs`` lists only the group's own members; with ``recursive`` the
        members of groups made below it (say, by systemd inside a container) count too.
        """
        found: set[int] = set()
        for top in self.dirs():
            for directory in (d for d, _, _ in os.walk(top)) if recursive else [top]:
                text = _read(os.path.join(directory, "cgroup.procs")) or ""
                found.update(int(p) for p in text.split() if p.isdigit())
        # A process is dropped from its cgroup when it exits, before its parent reaps
        # it: a zombie still listed here is in no group any more.
        return sorted(p for p in found if processes.is_alive(p))

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the group and wait until it is empty.

        Killing pid by pid races with a process that forks (a fork bomb makes new
        children faster than a loop reads ``cgroup.procs``). The kernel's answer is
        ``cgroup.kill`` (v2, Linux 5.14+), which kills the whole group at once; without
        it, the group is *frozen* first (no process in it runs, so none can fork), every
        pid is sent SIGKILL, and the group is thawed so that the kills take effect; that
        is what runc does. It is repeated until ``cgroup.procs`` is empty.
        """
        self._guard("kill the processes of")
        if os.getpid() in self.pids(recursive=True):
            raise CgroupError(f"refusing to kill {self.relpath}: this process is in it")
        deadline = time.monotonic() + timeout
        while True:
            if not self._kill_at_once():
                self._freeze(True)
                try:
                    for pid in self.pids(recursive=True):
                        _signal(pid, signal.SIGKILL)
                finally:
                    self._freeze(False)
            if not self._wait_empty(min(deadline, time.monotonic() + 0.5)):
                if time.monotonic() >= deadline:
                    raise CgroupError(f"processes still in {self.relpath} after SIGKILL: "
                                      f"{self.pids(recursive=True)}")
                continue
            return

    def _wait_empty(self, until: float) -> bool:
        while self.pids(recursive=True):
            if time.monotonic() >= until:
                return False
            time.sleep(0.01)
        return True

    def _kill_at_once(self) -> bool:
        return False

    def freeze(self) -> None:
        """Stop every process of the group where it is (``docker pause``).

        Frozen processes are not scheduled at all, and cannot notice it: unlike
        SIGSTOP, nothing is delivered to them, and a parent waiting for them sees no
        change. New processes forked into the group are frozen too.
        """
        if not self._freeze(True):
            raise CgroupError(f"cannot freeze {self.relpath}: no freezer for this cgroup")

    def thaw(self) -> None:
        """Let a frozen group run again (``docker unpause``)."""
        if not self._freeze(False):
            raise CgroupError(f"cannot thaw {self.relpath}: no freezer for this cgroup")

    def is_frozen(self) -> bool:
        """True while the group is frozen."""
        raise NotImplementedError

    def _freeze(self, frozen: bool) -> bool:
        """Freeze or thaw the group; False when there is no freezer to do it with."""
        return False

    def remove(self, timeout: float = 5.0) -> None:
        """Delete the group's directories (the deepest first), in every hierarchy.

        ``rmdir`` is the only way to delete a cgroup, and the kernel refuses it
        (``EBUSY``) while a process is still in the group, including one that has
        just been killed and not yet fully exited; so it is retried for a little while.
        The files inside need no deleting: they are the kernel's, not real files.
        Removing a group that does not exist is not an error.
        """
        self._guard("remove")
        deadline = time.monotonic() + timeout
        for directory in self.dirs():
            _remove_tree(directory, deadline)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _remove_tree(directory: str, deadline: float) -> None:
    """rmdir ``directory`` and any child groups in it, children first."""
    if not os.path.isdir(directory):
        return
    for dirpath, dirnames, _ in os.walk(directory, topdown=False):
        for name in dirnames:
            _rmdir_retrying(os.path.join(dirpath, name), deadline)
    _rmdir_retrying(directory, deadline)


def _rmdir_retrying(directory: str, deadline: float) -> None:
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                procs = (_read(os.path.join(directory, "cgroup.procs")) or "").split()
                hint = f" (processes still in it: {' '.join(procs)})" if procs else ""
                raise CgroupError(f"cannot remove cgroup {directory}: {e.strerror}{hint}") from None
            time.sleep(0.01)


# --------------------------------------------------------------------------- cgroup v1
class CgroupV1(Cgroup):
    """A group in cgroup v1: one directory in each controller's own tree.

    ``paths`` maps each controller to the group's path in that controller's tree
    (usually the same path everywhere; :func:`cgroup_of_pid` may find them differ).
    """

    version = 1

    def __init__(self, paths: dict[str, str], mountpoint: str = DEFAULT_MOUNTPOINT):
        self._paths, self._rel = {}, {}
        for controller, rel in paths.items():
            tree = os.path.join(mountpoint, controller)
            if os.path.isdir(tree):
                # cpu and cpuacct may be one tree ("cpu,cpuacct") with two symlinks to
                # it; resolving them makes that tree appear once in dirs().
                self._paths[controller] = os.path.join(os.path.realpath(tree), rel)
                self._rel[controller] = rel
        relpath = paths.get("memory") or next(iter(paths.values()), "")
        super().__init__(relpath, mountpoint)

    def dirs(self) -> list[str]:
        return list(dict.fromkeys(self._paths.values()))

    def relpaths(self) -> list[str]:
        return list(dict.fromkeys(self._rel.values()))

    def path(self, controller: str) -> str | None:
        return self._paths.get(controller)

    def create(self) -> None:
        """``mkdir`` the group in every controller's tree (parents too).

        v1 trees are independent: a group exists in the memory tree and the pids tree
        separately, and each starts with its tree's defaults (no limits).
        """
        if not self.dirs():
            raise CgroupError(f"no cgroup v1 controller is mounted under {self.mountpoint}")
        made = []
        for directory in self.dirs():
            try:
                if not os.path.isdir(directory):
                    os.makedirs(directory)
                    made.append(directory)
            except OSError as e:
                for done in reversed(made):  # leave nothing half-made behind
                    _rmdir_retrying(done, time.monotonic() + 1.0)
                raise CgroupError(f"cannot create cgroup {directory}: {e.strerror}") from None

    def set_memory(self, limit: int | None, swap: int | None = None) -> None:
        """Cap the group's memory (RAM + page cache) at ``limit`` bytes; None = no cap.

        ``memory.limit_in_bytes`` is the RAM limit. When the group reaches it, the
        kernel first reclaims its page cache, and when that is not enough, the OOM
        killer picks a process *of this group* and SIGKILLs it (exit status 137).
        ``memory.memsw.limit_in_bytes`` (RAM + swap, present when swap accounting is on)
        is ``swap`` when given (Docker's ``--memory-swap``: RAM plus swap, -1 for no
        cap on swap), otherwise the same value as the RAM limit, so that the group
        cannot dodge the limit by swapping.
        The kernel requires memsw >= the RAM limit at every moment, so when raising the
        limit memsw goes first, and when lowering it goes second.
        """
        value = -1 if limit is None else int(limit)
        total = value if swap is None or limit is None else int(swap)
        ram, memsw = self._file("memory", "memory.limit_in_bytes"), self._file("memory", "memory.memsw.limit_in_bytes")
        if ram is None:
            raise CgroupError("cannot set memory limit: the memory controller is not mounted")
        what = f"set memory limit to {format_bytes(limit)}"
        if memsw and os.path.exists(memsw):
            current = _read_int(memsw)
            raising = total == -1 or (current is not None and total > current)
            order = [(memsw, total), (ram, value)] if raising else [(ram, value), (memsw, total)]
        else:
            order = [(ram, value)]
        for path, v in order:
            _write(path, v, what)

    def set_cpus(self, cpus: float) -> None:
        """Let the group use ``cpus`` CPUs' worth of time (CFS bandwidth control).

        v1 splits it over two files: ``cpu.cfs_period_us`` (the accounting window) and
        ``cpu.cfs_quota_us`` (CPU time allowed per window, -1 = no limit).
        """
        quota = _validated_quota(cpus)
        _write(self._require("cpu", "cpu.cfs_period_us"), CFS_PERIOD_US, f"set cpus to {cpus}")
        _write(self._require("cpu", "cpu.cfs_quota_us"), quota, f"set cpus to {cpus}")

    def set_cpu_shares(self, shares: int) -> None:
        """Relative CPU weight when CPUs are contended (``cpu.shares``, default 1024).

        Unlike a quota, shares never hold a group back while a CPU is idle: two busy
        groups with 2048 and 1024 shares get CPU time in a 2:1 ratio.
        """
        _write(self._require("cpu", "cpu.shares"), _validated_shares(shares), f"set cpu shares to {shares}")

    def set_pids(self, limit: int | None) -> None:
        """Allow at most ``limit`` processes/threads in the group (``pids.max``).

        Past the limit ``fork()``/``clone()`` fail with EAGAIN ("Resource temporarily
        unavailable"): a fork bomb stops instead of taking the machine down.
        """
        _write(self._require("pids", "pids.max"), _pids_value(limit), f"set pids limit to {limit}")

    def _require(self, controller: str, name: str) -> str:
        path = self._file(controller, name)
        if path is None:
            raise CgroupError(f"the {controller} controller is not mounted under {self.mountpoint}")
        return path

    def oom_killed(self) -> bool:
        """True if the OOM killer has killed a process of this group.

        ``memory.oom_control`` has counted kills (``oom_kill N``) since Linux 4.13;
        before that, ``memory.failcnt`` (how often the limit was hit) is the best clue.
        """
        control = _read_keyed(self._file("memory", "memory.oom_control") or "/nonexistent")
        if "oom_kill" in control:
            return control["oom_kill"] > 0
        return (_read_int(self._file("memory", "memory.failcnt") or "/nonexistent") or 0) > 0

    def stats(self) -> dict:
        """What the group has used so far (see :data:`STATS_KEYS`)."""
        mem = lambda name: _read_int(self._file("memory", name) or "/nonexistent")  # noqa: E731
        limit = mem("memory.limit_in_bytes")
        cpu_stat = _read_keyed(self._file("cpu", "cpu.stat") or "/nonexistent")
        oom = _read_keyed(self._file("memory", "memory.oom_control") or "/nonexistent")
        pids_file = lambda name: self._file("pids", name) or "/nonexistent"  # noqa: E731
        return {
            "memory_usage": mem("memory.usage_in_bytes"),
            "memory_peak": mem("memory.max_usage_in_bytes"),
            "memory_limit": None if limit is None or limit >= _UNLIMITED_V1 else limit,
            "memory_inactive_file": _read_keyed(self._file("memory", "memory.stat") or "/nonexistent")
            .get("total_inactive_file"),
            "oom_kills": oom.get("oom_kill", 0),
            "cpu_usage_ns": _read_int(self._file("cpuacct", "cpuacct.usage") or "/nonexistent"),
            "cpu_throttled_ns": cpu_stat.get("throttled_time"),
            "cpu_periods": cpu_stat.get("nr_periods"),
            "cpu_throttled_periods": cpu_stat.get("nr_throttled"),
            "pids_current": _read_int(pids_file("pids.current")),
            "pids_limit": _read_int(pids_file("pids.max")),
            "pids_limit_hits": _read_keyed(pids_file("pids.events")).get("max"),
        }

    def _freeze(self, frozen: bool) -> bool:
        """v1 freezer: write FROZEN/THAWED to ``freezer.state``; freezing finishes
        asynchronously (the file reads FREEZING until every task has stopped)."""
        state = self._file("freezer", "freezer.state")
        if state is None or not os.path.exists(state):
            return False
        _write(state, "FROZEN" if frozen else "THAWED", "freeze" if frozen else "thaw")
        if frozen:
            until = time.monotonic() + 1.0
            while (_read(state) or "").strip() == "FREEZING" and time.monotonic() < until:
                time.sleep(0.005)
        return True

    def is_frozen(self) -> bool:
        state = self._file("freezer", "freezer.state")
        return bool(state) and (_read(state) or "").strip() == "FROZEN"


# --------------------------------------------------------------------------- cgroup v2
class CgroupV2(Cgroup):
    """A group in cgroup v2: one directory in the single unified tree."""

    version = 2

    def __init__(self, relpath: str, mountpoint: str = DEFAULT_MOUNTPOINT):
        super().__init__(relpath, mountpoint)
        self.dir = os.path.join(mountpoint, relpath) if relpath else mountpoint

    def dirs(self) -> list[str]:
        return [self.dir]

    def relpaths(self) -> list[str]:
        return [self.relpath]

    def path(self, controller: str) -> str | None:
        return self.dir

    def create(self) -> None:
        """``mkdir`` the group and every missing parent, enabling controllers on the way.

        In v2 a controller's files (``memory.max``, ``cpu.max``, ``pids.max``) only
        exist in a group whose *parent* has the controller in ``cgroup.subtree_control``,
        and a parent can only enable what it has itself (its ``cgroup.controllers``,
        which is its own parent's ``subtree_control``). So from the root down to the
        group's parent, each level must enable ``+memory +cpu +pids`` for the next.
        The group itself enables nothing: it will hold processes, and a non-root group
        with processes may not also hand controllers down (no internal processes).
        """
        here = self.mountpoint
        available = set((_read(os.path.join(here, "cgroup.controllers")) or "").split())
        for part in self.relpath.split("/"):
            available = self._enable_for_children(here, available)
            here = os.path.join(here, part)
            try:
                os.makedirs(here, exist_ok=True)
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {here}: {e.strerror}") from None

    @staticmethod
    def _enable_for_children(directory: str, available: set[str]) -> set[str]:
        """Add the controllers minidocker uses to ``directory``'s ``subtree_control``
        (those it has and has not enabled yet); return what its children will have."""
        control = os.path.join(directory, "cgroup.subtree_control")
        enabled = {c.lstrip("+") for c in (_read(control) or "").split()}
        missing = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
        if missing:
            try:
                _write(control, " ".join(f"+{c}" for c in missing), f"enable {', '.join(missing)} in {directory}")
            except CgroupError as e:
                procs = (_read(os.path.join(directory, "cgroup.procs")) or "").split()
                if procs:  # EBUSY: the no-internal-processes rule
                    raise CgroupError(f"{e} ({directory} holds processes, and a cgroup with "
                                      "processes cannot enable controllers for children)") from None
                raise
            enabled = {c.lstrip("+") for c in (_read(control) or "").split()}
        # The kernel rule: a child's cgroup.controllers is its parent's subtree_control.
        return enabled

    def set_memory(self, limit: int | None, swap: int | None = None) -> None:
        """Cap the group's memory at ``limit`` bytes (``memory.max``); None = ``max``.

        At the limit the kernel reclaims, then OOM-kills a process of the group
        (counted as ``oom_kill`` in ``memory.events``). ``memory.swap.max`` is set to 0
        where it exists, so that the group cannot swap its way past the limit, unless
        ``swap`` (RAM plus swap, as v1's memsw and Docker's ``--memory-swap``) allows
        some: v2 counts swap on its own, so the file gets ``swap - limit`` (-1: ``max``).
        """
        what = f"set memory limit to {format_bytes(limit)}"
        _write(os.path.join(self.dir, "memory.max"), "max" if limit is None else int(limit), what)
        swap_file = os.path.join(self.dir, "memory.swap.max")
        if os.path.exists(swap_file):
            if limit is None or swap == -1:
                allowed = "max"
            else:
                allowed = 0 if swap is None else max(int(swap) - int(limit), 0)
            _write(swap_file, allowed, what)

    def set_cpus(self, cpus: float) -> None:
        """Let the group use ``cpus`` CPUs' worth of time: ``cpu.max`` = ``"QUOTA PERIOD"``
        (both in µs; ``"max PERIOD"`` means no limit)."""
        quota = _validated_quota(cpus)
        _write(os.path.join(self.dir, "cpu.max"), f"{quota} {CFS_PERIOD_US}", f"set cpus to {cpus}")

    def set_cpu_shares(self, shares: int) -> None:
        """Relative CPU weight under contention: v2's ``cpu.weight`` (1..10000, default
        100), converted from Docker's v1-style shares by :func:`cpu_weight_from_shares`."""
        weight = cpu_weight_from_shares(_validated_shares(shares))
        _write(os.path.join(self.dir, "cpu.weight"), weight, f"set cpu shares to {shares}")

    def set_pids(self, limit: int | None) -> None:
        """Allow at most ``limit`` processes/threads (``pids.max``; forks past it fail
        with EAGAIN, counted as ``max`` in ``pids.events``)."""
        _write(os.path.join(self.dir, "pids.max"), _pids_value(limit), f"set pids limit to {limit}")

    def oom_killed(self) -> bool:
        """True if the OOM killer has killed a process of this group (``memory.events``:
        ``oom`` counts times the limit was hit, ``oom_kill`` the processes killed)."""
        return _read_keyed(os.path.join(self.dir, "memory.events")).get("oom_kill", 0) > 0

    def stats(self) -> dict:
        """What the group has used so far (see :data:`STATS_KEYS`)."""
        f = lambda name: os.path.join(self.dir, name)  # noqa: E731
        cpu_stat = _read_keyed(f("cpu.stat"))
        usec = lambda key: None if key not in cpu_stat else cpu_stat[key] * 1000  # noqa: E731
        return {
            "memory_usage": _read_int(f("memory.current")),
            "memory_peak": _read_int(f("memory.peak")),
            "memory_limit": _read_int(f("memory.max")),
            "memory_inactive_file": _read_keyed(f("memory.stat")).get("inactive_file"),
            "oom_kills": _read_keyed(f("memory.events")).get("oom_kill", 0),
            "cpu_usage_ns": usec("usage_usec"),
            "cpu_throttled_ns": usec("throttled_usec"),
            "cpu_periods": cpu_stat.get("nr_periods"),
            "cpu_throttled_periods": cpu_stat.get("nr_throttled"),
            "pids_current": _read_int(f("pids.current")),
            "pids_limit": _read_int(f("pids.max")),
            "pids_limit_hits": _read_keyed(f("pids.events")).get("max"),
        }

    def _kill_at_once(self) -> bool:
        """``cgroup.kill`` (Linux 5.14+): writing 1 SIGKILLs every process in the group
        and its descendants in one step, with no fork race."""
        kill = os.path.join(self.dir, "cgroup.kill")
        if not os.path.exists(kill):
            return False
        _write(kill, 1, f"kill the processes of {self.relpath}")
        return True

    def _freeze(self, frozen: bool) -> bool:
        """v2 freezer (Linux 5.2+): ``cgroup.freeze``; ``cgroup.events`` says ``frozen 1``
        once every process has stopped."""
        control = os.path.join(self.dir, "cgroup.freeze")
        if not os.path.exists(control):
            return False
        _write(control, 1 if frozen else 0, "freeze" if frozen else "thaw")
        events = os.path.join(self.dir, "cgroup.events")
        until = time.monotonic() + 1.0
        while frozen and os.path.exists(events) and time.monotonic() < until:
            if _read_keyed(events).get("frozen") == 1:
                break
            time.sleep(0.005)
        return True

    def is_frozen(self) -> bool:
        events = os.path.join(self.dir, "cgroup.events")
        if os.path.exists(events):
            return _read_keyed(events).get("frozen") == 1
        return (_read(os.path.join(self.dir, "cgroup.freeze")) or "").strip() == "1"


#: The keys of :meth:`Cgroup.stats`, the same on v1 and v2 (None where unknown).
STATS_KEYS = {
    "memory_usage": "bytes in use now (memory.usage_in_bytes / memory.current)",
    "memory_peak": "most bytes ever in use (memory.max_usage_in_bytes / memory.peak)",
    "memory_limit": "the limit in bytes, None for none",
    "memory_inactive_file": "page cache the kernel can drop at once (memory.stat); "
                            "docker stats shows memory_usage minus this",
    "oom_kills": "processes the OOM killer killed in the group",
    "cpu_usage_ns": "CPU time used, all CPUs together (cpuacct.usage / cpu.stat usage_usec)",
    "cpu_throttled_ns": "time spent throttled by the CPU quota (cpu.stat)",
    "cpu_periods": "CFS periods in which the group ran (nr_periods)",
    "cpu_throttled_periods": "periods in which it used up its quota (nr_throttled)",
    "pids_current": "processes and threads in the group now",
    "pids_limit": "pids.max, None for none",
    "pids_limit_hits": "forks refused because of pids.max (pids.events 'max')",
}


def _validated_quota(cpus: float) -> int:
    """``--cpus`` checked the way Docker checks it, then turned into a quota."""
    ncpu = os.cpu_count() or 1
    try:
        cpus = float(cpus)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid cpus value: {cpus!r}") from None
    quota = cpu_quota_us(cpus)
    if cpus <= 0 or cpus > ncpu or quota < CFS_MIN_QUOTA_US:
        raise InvalidInput(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    return quota


def _validated_shares(shares: int) -> int:
    if not isinstance(shares, int) or not 2 <= shares <= 262144:
        raise InvalidInput(f"invalid cpu shares {shares!r}: must be between 2 and 262144")
    return shares


def _pids_value(limit: int | None):
    """Docker's ``--pids-limit``: a positive number; 0, -1 or None mean no limit (``max``)."""
    if limit is None or limit in (0, -1):
        return "max"
    if not isinstance(limit, int) or limit < 0:
        raise InvalidInput(f"invalid pids limit {limit!r}")
    return limit
