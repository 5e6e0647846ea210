"""Pausing a container (the freezer cgroup), and who holds a pause.

``docker pause`` and ``docker commit`` (``--pause``, on by default) stop every process of
a container where it stands by freezing its cgroup (:meth:`Cgroup.freeze`). A frozen
container is easy to strand: minidocker has no daemon, so if the command that froze it
is killed before it thaws, nothing else would ever thaw it. And a frozen process is hard
to get rid of: on cgroup v1 it does not even die of SIGKILL until it is thawed, so
``kill``, ``stop`` and ``rm -f`` would wait for ever.

So a pause is *recorded* before the freeze and *cleared* after the thaw, in the
container's ``state.json``: ``State.Paused`` (what ``inspect`` shows and ``ps`` prints as
``(Paused)``, as in Docker), and ``_PausedBy``, the identity (pid + start time, see
:mod:`minidocker.kernel.processes`) of the command holding the pause:

- ``commit`` holds its pause for as long as it writes the layer;
- ``pause`` holds it only while it freezes; once the container is frozen, the pause
  belongs to the user (``_PausedBy`` is ``None``) until ``unpause``.

:func:`reconcile` (run by every command that looks at a container: ``ps``, ``inspect``,
``kill``, ``rm``...) thaws a container whose pause holder is dead. Whatever was killed
in between (the record written but no freeze yet, or frozen and never thawed) ends the
same way: thawed, not paused. :func:`thaw_for_signal` is what ``kill``, ``stop`` and
``rm -f`` do first: a signal to a frozen process waits for the thaw.
"""

from __future__ import annotations

import contextlib

from ..crashpoint import reached as crash_point
from ..errors import Conflict
from ..kernel import cgroups, processes
from .containers import Container


def _cgroup(c: Container):
    return cgroups.open_cgroup(c.cgroup)


def is_frozen(c: Container) -> bool:
    """Does the kernel say the container's cgroup is frozen (whatever the record says)?"""
    try:
        cg = _cgroup(c)
        return cg.exists() and cg.is_frozen()
    except OSError:
        return False


def _thaw(c: Container) -> None:
    try:
        cg = _cgroup(c)
        if cg.exists():
            cg.thaw()
    except OSError:
        pass        # no freezer (then nothing froze it), or the group is gone already


def pause(c: Container, owner: dict | None = None) -> None:
    """Freeze container ``c``: ``docker pause`` (``owner=None``: the user holds the pause
    afterwards) or a command's pause (``owner``: its identity; it must :func:`unpause`).

    Recorded first, frozen second: a command killed in between leaves a record whose
    holder is dead, which :func:`reconcile` clears."""
    holder = processes.identity()
    with c.locked():
        c.reload()
        if not c.state["State"].get("Running"):
            raise Conflict(f"Container {c.id} is not running")
        if c.state["State"].get("Paused"):
            raise Conflict(f"Container {c.id} is already paused")
        c.state["State"].update(Paused=True, Status="paused")
        c.state["_PausedBy"] = owner or holder
        c.save()
    try:
        _cgroup(c).freeze()
    except OSError as e:
        _clear(c, owner or holder)
        raise Conflict(f"cannot pause container {c.id}: {e}") from None
    crash_point("frozen")
    if owner is None:
        c.update(_PausedBy=None)       # frozen: from now on the user's pause


def unpause(c: Container, owner: dict | None = None) -> None:
    """Thaw container ``c`` and clear its pause: ``docker unpause`` (``owner=None``), or
    the end of a command's own pause (``owner``: only if the pause is still its own;
    a ``kill`` may have ended it meanwhile). Thawed first, record cleared second."""
    c.reload()
    if owner is None and not c.state["State"].get("Paused"):
        raise Conflict(f"Container {c.id} is not paused")
    if owner is not None and c.state.get("_PausedBy") != owner:
        return
    _thaw(c)
    _clear(c, owner)


def _clear(c: Container, owner: dict | None) -> None:
    """Clear the pause record (only ``owner``'s, when given)."""
    with c.locked():
        c.reload()
        if owner is not None and c.state.get("_PausedBy") != owner:
            return
        if not c.state["State"].get("Paused") and "_PausedBy" not in c.state:
            return
        running = bool(c.state["State"].get("Running"))
        c.state["State"]["Paused"] = False
        if c.state["State"].get("Status") == "paused":
            c.state["State"]["Status"] = "running" if running else "exited"
        c.state.pop("_PausedBy", None)
        c.save()


def reconcile(c: Container) -> None:
    """Thaw a container whose pause holder is gone (killed mid-``commit``), and clear a
    user's pause that the kernel no longer has (an ``unpause`` killed after the thaw)."""
    st = c.state["State"]
    if not st.get("Paused"):
        return
    holder = c.state.get("_PausedBy")
    if holder:
        if processes.owner_alive(holder):
            return
        _thaw(c)
        _clear(c, holder)
    elif not is_frozen(c):
        _clear(c, None)
    c.reload()


def thaw_for_signal(c: Container) -> None:
    """Before ``kill``, ``stop`` or ``rm -f`` signal a container: thaw it (a frozen process
    takes no signal until thawed; on cgroup v1 not even SIGKILL) and end its pause.
    Also thaws a group frozen behind minidocker's back (by hand, or by an older
    minidocker's killed ``commit``)."""
    if c.state["State"].get("Paused") or is_frozen(c):
        _thaw(c)
        _clear(c, None)
        c.reload()


@contextlib.contextmanager
def paused_by_command(c: Container, enabled: bool = True):
    """Hold container ``c`` paused for the ``with`` block, as this command's pause
    (``commit --pause``). A container that is not running, is paused already (the
    user's pause is left alone) or has no freezer goes on unpaused."""
    me = processes.identity()
    mine = False
    if enabled and c.state["State"].get("Running") and not c.state["State"].get("Paused") \
            and not is_frozen(c):
        try:
            pause(c, owner=me)
            mine = True
        except Conflict:
            pass        # no freezer here, or the container has just stopped
    try:
        yield
    finally:
        if mine:
            unpause(c, owner=me)
