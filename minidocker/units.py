"""Sizes as Docker prints them (its ``go-units`` package): powers of 1000, not 1024.

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
