"""The per-layer progress of ``docker pull`` / ``docker push``, as on the slides::

    latest: Pulling from library/busybox
    a3ed95caeb02: Already exists
    5f70bf18a086: Downloading [==========>                    ]  1.04MB/3.12MB
    ...

One line per layer, named by the first 12 hex digits of its digest. On a terminal the
lines are redrawn in place (ANSI "cursor up" / "erase line") with live byte counts;
into a pipe or file every *state change* is one plain line, so logs stay readable.
Several layers move at once (downloads run in threads): a lock keeps lines whole.
"""

from __future__ import annotations

import sys
import threading
import time

from ..units import human_size

BAR_WIDTH = 50


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def bar(current: int, total: int) -> str:
    if not total:
        return human_size(current)
    filled = min(BAR_WIDTH, int(BAR_WIDTH * current / total))
    arrow = ">" if filled < BAR_WIDTH else ""
    body = "=" * filled + arrow
    return f"[{body:<{BAR_WIDTH}}] {human_size(current):>8}/{human_size(total)}"


class Progress:
    """Lines keyed by layer id; thread-safe."""

    def __init__(self, out=None, tty: bool | None = None, quiet: bool = False):
        self.out = out or sys.stdout
        if tty is None:
            isatty = getattr(self.out, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.quiet = quiet
        self.lines: list[str] = []          # ids, in screen order
        self.text: dict[str, str] = {}
        self.last_draw: dict[str, float] = {}
        self.lock = threading.Lock()

    def message(self, text: str, id: str | None = None) -> None:
        """A line that is not a layer's (``Digest: ...``); with ``id``, a line about
        that thing (``latest: Pulling from library/busybox``)."""
        if self.quiet:
            return
        with self.lock:
            self.out.write((f"{id}: {text}" if id else text) + "\n")
            self.out.flush()

    def update(self, layer_id: str, status: str, current: int | None = None,
               total: int | None = None) -> None:
        """Set a layer's state; ``current``/``total`` add a byte bar on a terminal."""
        if self.quiet:
            return
        with self.lock:
            if current is not None:
                if not self.tty:
                    return                  # bytes only on a terminal
                now = time.monotonic()
                # redraw at most ~10 times a second per line: drawing is not free
                if now - self.last_draw.get(layer_id, 0) < 0.1 and current != total:
                    return
                self.last_draw[layer_id] = now
                status = f"{status} {bar(current, total or 0)}"
            line = f"{layer_id}: {status}"
            if self.text.get(layer_id) == line:
                return
            self.text[layer_id] = line
            if layer_id not in self.lines:
                self.lines.append(layer_id)
                self.out.write(line + ("\x1b[K" if self.tty else "") + "\n")
            elif not self.tty:
                self.out.write(line + "\n")
            else:
                up = len(self.lines) - self.lines.index(layer_id)
                # up N lines, rewrite, erase the rest of the old text, back down N
                self.out.write(f"\x1b[{up}A\r{line}\x1b[K\r\x1b[{up}B")
            self.out.flush()
