"""A test-only hook: kill this command at a named step, as ``kill -9`` would.

minidocker promises that a command killed at any instant leaves a store that works
(``docs/crash-consistency.rst``). Killing at random times tests that statistically; the
dangerous instants (a blob stored but no image yet, a container paused by a commit) are
too short to hit by chance. So the code names them: ``crashpoint.reached("extracted")``,
and the crash tests run a command with

    MINIDOCKER_TEST_CRASH_AT=extracted      (or extracted@2: the second time)

which makes the process SIGKILL itself when it gets there. Without the variable a
crash point costs one dictionary lookup. Nothing else in minidocker reads it.
"""

from __future__ import annotations

import os
import signal

ENV = "MINIDOCKER_TEST_CRASH_AT"

_counts: dict[str, int] = {}


def reached(step: str) -> None:
    """SIGKILL this process if ``$MINIDOCKER_TEST_CRASH_AT`` names ``step`` (``step@N``:
    the Nth time this process reaches it)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if _counts[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
