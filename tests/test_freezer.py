"""Pause and the freezer: ``pause``/``unpause``, ``(Paused)`` in ``ps``, a pause held by a
killed ``commit`` undone by the next command, and ``kill``/``stop``/``rm -f`` of a frozen
container (on cgroup v1 a frozen process does not even die of SIGKILL until thawed).

Runs on the host (cgroup v1) and in the cgroup-v2 VM (tests/vm/kernel-tests.txt)."""

from __future__ import annotations

import json
import os
import time

import pytest

from helpers_engine import md  # noqa: F401  (fixture)
from minidocker.kernel import cgroups

RUN = ("run", "-d", "--network", "none", "busybox")
#: a container that says every 0.1 s that it runs: a frozen one stops counting. The
#: count is written aside and renamed into place: frozen between the truncation and
#: the write of a plain ``> /tick``, a commit would keep an empty file.
TICKER = ("sh", "-c",
          "i=0; while true; do i=$((i+1)); echo $i > /tick.new; mv /tick.new /tick; sleep 0.1; done")


def _cg(cid):
    return cgroups.open_cgroup(f"minidocker/{cid}")


def _state(md, cid):
    with open(os.path.join(md.root, "containers", cid, "state.json")) as f:
        return json.load(f)


def _ticks(md, cid):
    return int(md.out("exec", cid, "cat", "/tick").strip() or 0)


def _ticking(md, cid) -> bool:
    first = _ticks(md, cid)
    for _ in range(50):
        time.sleep(0.1)
        if _ticks(md, cid) != first:
            return True
    return False


@pytest.fixture
def ticker(md):
    cid = md.out(*RUN, *TICKER).strip()
    for _ in range(100):
        if md("exec", cid, "cat", "/tick").returncode == 0:
            break
        time.sleep(0.05)
    yield cid
    md("rm", "-f", cid)


def test_pause_unpause_and_ps_shows_paused(md, ticker):
    assert md.out("pause", ticker) == ticker + "\n"
    assert _cg(ticker).is_frozen()
    assert "(Paused)" in md.out("ps")
    state = json.loads(md.out("inspect", ticker))[0]["State"]
    assert (state["Status"], state["Running"], state["Paused"]) == ("paused", True, True)
    r = md("pause", ticker)
    assert r.returncode == 1 and f"Container {ticker} is already paused" in r.stderr
    r = md("exec", ticker, "true")
    assert r.returncode != 0 and "is paused, unpause the container before exec" in r.stderr
    assert md.out("unpause", ticker) == ticker + "\n"
    assert not _cg(ticker).is_frozen()
    assert "(Paused)" not in md.out("ps")
    assert json.loads(md.out("inspect", ticker))[0]["State"]["Status"] == "running"
    assert _ticking(md, ticker)
    r = md("unpause", ticker)
    assert r.returncode == 1 and f"Container {ticker} is not paused" in r.stderr


def test_commit_killed_while_paused_is_thawed_by_the_next_command(md, ticker):
    r = md("commit", ticker, "snap:1", env={"MINIDOCKER_TEST_CRASH_AT": "commit-paused"})
    assert r.returncode == -9
    # the killed commit left it frozen, recorded as the (dead) commit's pause
    assert _cg(ticker).is_frozen()
    assert _state(md, ticker)["_PausedBy"]["Pid"] > 0
    # the next command that looks at it (here ps) thaws it
    assert "(Paused)" not in md.out("ps")
    assert not _cg(ticker).is_frozen()
    assert "_PausedBy" not in _state(md, ticker)
    assert _ticking(md, ticker)
    # and the same commit, run again, completes and leaves it running
    image = md.out("commit", ticker, "snap:1").strip()
    assert image.startswith("sha256:") and not _cg(ticker).is_frozen()
    assert md.out("run", "--rm", "--network", "none", "snap:1", "cat", "/tick").strip().isdigit()
    md("rmi", "snap:1")


def test_pause_killed_after_the_freeze_is_undone(md, ticker):
    """``pause`` holds the pause until the freeze is done: killed just after it, the
    pause has no live holder and the next command thaws."""
    r = md("pause", ticker, env={"MINIDOCKER_TEST_CRASH_AT": "frozen"})
    assert r.returncode == -9 and _cg(ticker).is_frozen()
    md.out("inspect", ticker)
    assert not _cg(ticker).is_frozen()
    assert _ticking(md, ticker)


@pytest.mark.parametrize("verb", ["kill", "stop", "rm -f"])
@pytest.mark.parametrize("how", ["paused", "frozen by hand"])
def test_frozen_container_is_thawed_before_the_signal(md, verb, how):
    """kill, stop and rm -f of a paused container, or of one whose cgroup someone froze
    behind minidocker's back (what a killed commit of an older minidocker left), end
    it at once instead of waiting for ever."""
    cid = md.out(*RUN, "sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.1; done").strip()
    try:
        if how == "paused":
            md.out("pause", cid)
        else:
            _cg(cid).freeze()
        assert _cg(cid).is_frozen()
        start = time.monotonic()
        r = md(*verb.split(), cid, timeout=30)
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - start < 8
        if verb != "rm -f":
            md.out("wait", cid, timeout=15)
            state = json.loads(md.out("inspect", cid))[0]["State"]
            assert state["Status"] == "exited" and not state["Paused"]
            assert state["ExitCode"] == (3 if verb == "stop" else 137)
        else:
            assert md("inspect", cid).returncode != 0
        assert not _cg(cid).exists()
    finally:
        md("rm", "-f", cid)


def test_rm_without_force_refuses_a_paused_container(md, ticker):
    md.out("pause", ticker)
    r = md("rm", ticker)
    assert r.returncode == 1 and "You cannot remove a paused container" in r.stderr
    r = md("start", ticker)
    assert r.returncode == 1 and "cannot start a paused container" in r.stderr
    assert md.out("rm", "-f", ticker) == ticker + "\n"
