"""Container logs: what the container printed, kept as JSON lines like Docker's json-file
driver (``{"log": "hi\\n", "stream": "stdout", "time": "..."}``), so that ``logs`` can
replay stdout and stderr separately and ``--timestamps`` knows when each line came."""

from __future__ import annotations

import json
import os

from .. import clock


class LogWriter:
    """Append output chunks to ``container.log`` one line per record."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial.get(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        self.partial[stream] = rest
        for line in lines:
            self._record(stream, line + b"\n")

    def _record(self, stream: str, data: bytes) -> None:
        rec = {"log": data.decode("utf-8", "replace"), "stream": stream, "time": clock.rfc3339()}
        os.write(self.fd, (json.dumps(rec) + "\n").encode())

    def close(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._record(stream, rest)
        self.partial.clear()
        os.close(self.fd)


def read_records(path: str, offset: int = 0):
    """Yield (record, next_offset) from ``offset`` on; stops at a partial last line."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            offset += len(raw)
            yield json.loads(raw), offset
