"""Timestamps, as Docker and the OCI formats write them: RFC 3339 in UTC.

``created`` in an image config, ``Created``/``StartedAt`` in a container's state, the
``time`` of each log line: all are strings like ``2024-05-01T10:00:00.123456789Z``.
The fraction matters: two images made within one second still sort in the order they
were made (``images`` lists the newest first).
"""

from __future__ import annotations

import time


def rfc3339(epoch: int | None = None) -> str:
    """Now, to the nanosecond; or a given whole second since the epoch (a reproducible
    build's ``SOURCE_DATE_EPOCH``), without a fraction."""
    if epoch is not None:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def parse(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 time (``...Z``, ``...+02:00``, with or
    without a fraction of any length); None if missing, unreadable, or Go's zero time
    (``0001-01-01T00:00:00Z``, which Docker shows as "N/A")."""
    if not text or not isinstance(text, str):
        return None
    text = text.strip()
    offset = 0
    if text.endswith(("Z", "z")):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        sign = 1 if text[-6] == "+" else -1
        try:
            offset = sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
        except ValueError:
            return None
        text = text[:-6]
    fraction = 0.0
    if "." in text:
        text, frac = text.split(".", 1)
        fraction = float("0." + frac) if frac.isdigit() else 0.0
    # lazy: calendar (and datetime with it) costs ~2 ms, in every start of
    # minidocker-runtime too, whose verbs only write timestamps
    import calendar
    try:
        base = calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if base <= 0:
        return None
    return base + fraction - offset


def since(text: str) -> float:
    """Seconds from an RFC 3339 time until now (0 if it cannot be read): how long a
    container has been up, how old an image is."""
    t = parse(text)
    return 0.0 if t is None else time.time() - t
