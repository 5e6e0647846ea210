"""Sizes and durations as Docker prints them (its ``go-units`` package): sizes in powers
of 1000, not 1024; durations as "About a minute", "3 hours".

``docker images`` shows ``1.98MB`` (3 significant digits); ``docker build`` sends a
"build context to Docker daemon  2.048kB" and ``prune`` reports "Total reclaimed space:
12.35MB" (4 significant digits).
"""

from __future__ import annotations

UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """``units.HumanSizeWithPrecision(size, precision)``: ``2.05MB``, ``123kB``, ``0B``."""
    size = float(size)
    i = 0
    while size >= 1000 and i < len(UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{UNITS[i]}"


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``: "Less than a second", "About a minute",
    "4 minutes", "About an hour", "3 hours", "2 days", "3 weeks", "5 months", "2 years"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{s // 3600 // 24 // 365} years"
