"""Long operations as Docker's JSON message streams (moby's ``pkg/jsonmessage``).

``docker pull``, ``push``, ``load`` and ``build`` do not get one answer at the end: the
daemon sends newline-delimited JSON objects while it works, and the CLI draws them::

    {"status": "Pulling from library/busybox", "id": "latest"}
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "a3ed95caeb02"}
    {"status": "Downloading", "progressDetail": {"current": 524288, "total": 772788},
     "progress": "[=================================>                 ]  524.3kB/772.8kB",
     "id": "a3ed95caeb02"}
    {"stream": "Step 1/3 : FROM busybox\\n"}                      (build)
    {"aux": {"ID": "sha256:..."}}                                   (build, push)
    {"errorDetail": {"message": "..."}, "error": "..."}             (a failure)

A failure *before* anything was sent is an ordinary HTTP error (404 for an image the
registry does not have), as moby answers it; once the ``200`` and some messages are
out, it can only be a last ``errorDetail`` message.

:func:`streamed` runs the work in a thread that reports to a queue, and hands the
server a generator over that queue.
"""

from __future__ import annotations

import queue
import threading
import time

from ..registry.progress import Progress, bar
from .http import JsonStream

_DONE = object()


def error_message(exc: BaseException) -> dict:
    text = str(exc) or type(exc).__name__
    return {"errorDetail": {"message": text}, "error": text}


class Sink:
    """Where the work puts its messages (dicts)."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()

    def put(self, message: dict) -> None:
        self.queue.put(message)


def streamed(work, first_timeout: float | None = None) -> JsonStream:
    """Run ``work(sink)`` in a thread; return the stream of what it puts in ``sink``.

    Waits for the first message (or the end): an exception raised before any message
    propagates to the caller (an HTTP error); one raised later becomes the stream's
    last message. If the client goes away, the work still runs to its end (a pull or
    a build is never left half-done), its messages are dropped."""
    sink = Sink()

    def run():
        try:
            work(sink)
        except BaseException as e:   # noqa: B902 - reported to the client, not lost
            sink.queue.put(e)
        else:
            sink.queue.put(_DONE)
    threading.Thread(target=run, name="api-work", daemon=True).start()
    first = sink.queue.get(timeout=first_timeout)
    if isinstance(first, BaseException):
        raise first

    def messages():
        item = first
        while True:
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                yield error_message(item)
                return
            yield item
            item = sink.queue.get()
    return JsonStream(messages())


class JsonProgress(Progress):
    """The registry client's progress reporter, speaking JSON messages to a sink
    instead of drawing lines on a terminal."""

    def __init__(self, sink: Sink):
        super().__init__(out=None, tty=False)
        self.sink = sink
        self.last: dict[str, float] = {}

    def message(self, text: str, id: str | None = None) -> None:
        msg = {"status": text}
        if id:
            msg["id"] = id
        self.sink.put(msg)
        # The end of a push: the CLI (and docker-py) read the pushed digest from "aux".
        words = text.split()
        if len(words) == 5 and words[1] == "digest:" and words[3] == "size:":
            self.sink.put({"progressDetail": {}, "aux": {
                "Tag": words[0].rstrip(":"), "Digest": words[2], "Size": int(words[4])}})

    def update(self, layer_id: str, status: str, current: int | None = None,
               total: int | None = None) -> None:
        msg = {"status": status, "progressDetail": {}, "id": layer_id}
        if current is not None:
            now = time.monotonic()
            # at most ~10 messages a second per layer, and always the last one
            if now - self.last.get(layer_id, 0) < 0.1 and current != total:
                return
            self.last[layer_id] = now
            msg["progressDetail"] = {"current": current, "total": total or 0}
            msg["progress"] = bar(current, total or 0)
        self.sink.put(msg)
