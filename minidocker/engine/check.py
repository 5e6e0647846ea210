"""``minidocker system check [--repair]``: is everything the data root says true?

minidocker has no daemon, so a command killed half-way (``kill -9``, the OOM killer, a
closed terminal, a power cut) is the normal fault. Each command orders its writes so
that whatever instant it dies at, the store stays usable
(``docs/crash-consistency.rst``); what a killed command can leave is *harmless but
wrong*: content nothing refers to, scratch files, a container marked running that is
not, a pause nobody will undo. This module finds all of it:

- the image store (:mod:`minidocker.image.check`): blobs against their digests,
  extracted layers against the layer database, images, tags, unused content, scratch;
- containers: records (a directory without ``state.json``), the image each one uses,
  "running" with no monitor alive, pauses whose holder is gone, frozen cgroups nobody
  paused, mounts and cgroups left by stopped containers, ``--rm`` containers and build
  steps' containers that should be gone, volumes without a record;
- mounts under the data root that no running container owns;
- the network: address leases, published ports and host-wide address claims held by
  containers that are gone; a user-defined network's DNS server dead while containers
  run on it, alive with none, or its dns.json left by one that died.

``--repair`` applies each problem's repair (never removing a whole image, nor an image
a container uses), checks again (removing an image can leave its blobs unused), and
exits 1 only if something is still wrong.
"""

from __future__ import annotations

import os

from .. import paths, scratch
from ..errors import MinidockerError
from ..image import check as image_check
from ..image.check import Problem
from ..image.store import Store
from ..kernel import mounts, processes
from . import freezer, lifecycle, volumes
from .containers import Container, containers_dir

#: repair rounds at most (a repair may uncover more: an image removed leaves blobs)
MAX_ROUNDS = 4


# --------------------------------------------------------------------------- containers
def check_containers(store: Store) -> tuple[list[Problem], dict[str, list[str]]]:
    """Problems of the container records; and image id -> ids of the containers using it."""
    problems, in_use = [], {}
    for cid in sorted(_listdir(containers_dir())):
        path = os.path.join(containers_dir(), cid)
        if not os.path.isdir(path):
            continue
        try:
            c = Container(cid)
            c.state["State"], c.state["Image"]
        except FileNotFoundError:
            problems.append(Problem(f"container {cid[:12]}", "has no record (left by a create "
                                    "or rm that did not finish)", _discard(path, cid)))
            continue
        except (ValueError, KeyError, TypeError):
            problems.append(Problem(f"container {cid[:12]}", "its record is damaged",
                                    _discard(path, cid)))
            continue
        in_use.setdefault(c.image_id, []).append(cid)
        problems += container_problems(c, store)
    return problems, in_use


def container_problems(c: Container, store: Store) -> list[Problem]:
    st = c.state["State"]
    subject = f"container {c.short_id}"
    found = []
    monitor = c.monitor_alive()
    fix = _reconciler(c)
    if st.get("Running") and not monitor:
        found.append(Problem(subject, "marked running, but its monitor is gone", fix))
    elif not st.get("Running") and not monitor and lifecycle._left_set_up(c):
        found.append(Problem(subject, "stopped, but its root filesystem or cgroup is still "
                             "there", fix))
    if st.get("Running") and monitor:
        holder = c.state.get("_PausedBy")
        frozen = freezer.is_frozen(c)
        if st.get("Paused") and holder and not processes.owner_alive(holder):
            found.append(Problem(subject, f"paused by process {holder.get('Pid')}, which is "
                                 "gone", fix))
        elif st.get("Paused") and not holder and not frozen:
            found.append(Problem(subject, "recorded as paused, but its cgroup is not frozen", fix))
        elif not st.get("Paused") and frozen:
            found.append(Problem(subject, "its cgroup is frozen, but nothing paused it",
                                 _thawer(c)))
    if not st.get("Running") and not monitor:
        if c.state.get("HostConfig", {}).get("AutoRemove"):
            found.append(Problem(subject, "was to be removed when it stopped (--rm)",
                                 _remover(c)))
        elif lifecycle._orphaned(c):
            found.append(Problem(subject, f"belongs to process {c.state['_Owner'].get('Pid')} "
                                 "(a build), which is gone", _remover(c)))
    if not store.has_image(c.image_id):
        found.append(Problem(subject, f"uses image {c.image_id}, which is not here",
                             None if st.get("Running") else _remover(c)))
    for d in (c.upper_dir, c.work_dir):
        if not os.path.isdir(d):
            found.append(Problem(subject, f"its {os.path.basename(d)} directory is missing",
                                 None if st.get("Running") else _remover(c)))
            break
    return found


def _reconciler(c: Container):
    def repair():
        lifecycle.reconcile(c.reload())
        return f"reconciled container {c.short_id} (took down what its dead holder left)"
    return repair


def _thawer(c: Container):
    def repair():
        freezer.thaw_for_signal(c)
        return f"thawed container {c.short_id}"
    return repair


def _remover(c: Container):
    def repair():
        lifecycle.remove(c.reload(), force=True)
        return f"removed container {c.short_id}"
    return repair


def _discard(path: str, cid: str):
    def repair():
        for point in scratch.mounts_under(path):
            mounts.umount(point, lazy=True)
        scratch.discard(paths.data_root(), path, "deleted-container")
        return f"removed container directory {cid[:12]}"
    return repair


# --------------------------------------------------------------------------- mounts
def check_mounts(root: str) -> list[Problem]:
    """Mounts under the data root that no running container owns. (Those in ``tmp/``
    belong to scratch: see the scratch check.)"""
    root = os.path.realpath(root)
    live = set()
    for cid in _listdir(containers_dir()):
        try:
            c = Container(cid)
        except (OSError, ValueError):
            continue
        if c.monitor_alive():
            live.add(os.path.realpath(c.rootfs))
    problems = []
    for point in sorted(set(mounts.mountpoints())):
        if not point.startswith(root + "/") or point in live:
            continue
        rel = os.path.relpath(point, root)
        if rel.split("/")[0] == "tmp":
            continue
        if rel.split("/")[0] == "containers" and rel.endswith("/bundle/rootfs"):
            continue    # a stopped container's: reported with the container
        problems.append(Problem(f"mount {rel}", "nothing running uses it", _umounter(point, rel)))
    return problems


def _umounter(point: str, rel: str):
    def repair():
        mounts.umount(point, lazy=True)
        return f"unmounted {rel}"
    return repair


# --------------------------------------------------------------------------- volumes, network
def check_volumes(root: str) -> list[Problem]:
    """A volume directory without its ``volume.json``: a ``volume create`` killed half-way
    (nothing lists or mounts it)."""
    problems = []
    base = volumes.volumes_dir()
    for name in _listdir(base):
        if os.path.isdir(os.path.join(base, name)) and not volumes.exists(name):
            problems.append(Problem(f"volume {name}", "has no record (volume.json)",
                                    _volume_remover(os.path.join(base, name), name)))
    return problems


def _volume_remover(path: str, name: str):
    def repair():
        scratch.discard(paths.data_root(), path, "deleted-volume")
        return f"removed volume directory {name}"
    return repair


def check_network() -> list[Problem]:
    from .. import network   # lazy: ~16-20 ms, and only this check needs it
    problems = [Problem(f"network {name}", what, _dns_repairer(network, name))
                for name, what in network.dns_problems()]
    found = network.stale_holdings()
    if not found:
        return problems

    def repair():
        network.cleanup_stale()
        network.release_stale_claims()
        return "released what dead containers held on the network"
    stale = [Problem(f"container {cid[:12]}", f"is gone but still holds {what}")
             for cid, what in found]
    stale[0].repair = repair
    return stale + problems


def _dns_repairer(network, name: str):
    """A user-defined network's DNS server out of line with its containers: started,
    stopped or forgotten (network/dns.py)."""
    def repair():
        network.repair_dns(name)
        return f"brought the DNS server of network {name} in line with its containers"
    return repair


# --------------------------------------------------------------------------- the command
def find_problems(store: Store, judge_unreferenced: bool) -> list[Problem]:
    problems, in_use = check_containers(store)
    problems += check_mounts(store.root)
    problems += check_volumes(store.root)
    problems += check_network()
    problems = image_check.check_store(store, in_use, judge_unreferenced) + problems
    return problems


def system_check(repair: bool = False, say=print, warn=None) -> int:
    """Print one line per problem (and, with ``repair``, one per repair); 0 when the data
    root is sound (or repaired to sound), else 1."""
    store = Store()
    warn = warn or say
    try:
        gc = store.collecting(timeout=5.0)
        gc.__enter__()
    except MinidockerError:
        gc = None
        pids = image_check.writers_alive(store)
        warn("system check: a command is writing to the store (pid "
             f"{', '.join(map(str, pids)) or '?'}): content no image uses yet is not judged")
    try:
        problems = find_problems(store, gc is not None)
        for p in problems:
            say(str(p))
        if not repair:
            return 1 if problems else 0
        shown = {str(p) for p in problems}
        done: set[str] = set()
        for _ in range(MAX_ROUNDS):
            fixable = [p for p in problems if p.repair is not None and str(p) not in done]
            if not fixable:
                break
            for p in fixable:
                done.add(str(p))
                try:
                    say(p.repair())
                except (MinidockerError, OSError) as e:
                    say(f"could not repair {p.subject}: {e}")
            problems = find_problems(store, gc is not None)
            for p in problems:
                if str(p) not in shown:
                    shown.add(str(p))
                    say(str(p))
        return 1 if problems else 0
    finally:
        if gc is not None:
            gc.__exit__(None, None, None)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
