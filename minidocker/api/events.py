"""``GET /events``: the event log (:mod:`minidocker.events`) as a stream.

As dockerd: without ``since``/``until`` only what happens from now on; with ``since``
the past first; the stream ends when ``until`` passes, else when the client goes away.
``docker events``, docker-py's ``client.events()`` and docker-compose's attached ``up``
(which learns from it that a container died) read it.

Each event goes out as soon as it is read. A follower yields ``None`` after a quiet
second; then the server writes nothing, but we look whether the client has closed its
side, so that a thread is not kept for a client that is gone.
"""

from __future__ import annotations

from .http import JsonStream
from .router import route


@route("GET", "/events")
def events(req):
    from .. import events as log
    filters = log.check_filters(req.query_filters())   # a bad filter: 400 before the 200
    since = req.query_str("since") or None
    until = req.query_str("until") or None
    if since is not None:
        log.parse_time_ns(since)
    if until is not None:
        log.parse_time_ns(until)

    def stream():
        for event in log.read(since=since, until=until, filters=filters, follow=True,
                              stop=req.client_gone):
            if event is not None:
                yield event
    return JsonStream(stream())
