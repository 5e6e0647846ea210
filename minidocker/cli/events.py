"""``minidocker events``: print what happens to containers, images, networks and
volumes, as ``docker events`` does (the log itself: :mod:`minidocker.events`)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import InvalidInput


def parse_filters(items) -> dict[str, list[str]]:
    """``--filter k=v`` (repeatable) as ``{k: [v, ...]}``, Docker's ``filters.Args``."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key.strip().lower(), []).append(value)
    return filters


def render(event: dict, fmt: str | None) -> str:
    """One event: Docker's text line, or through a ``--format`` template. Templates see
    the Go field names of Docker's ``events.Message`` (``.Type``, ``.Action``,
    ``.Actor.Attributes.name``, ``.ID``, ``.Status``, ``.From``, ``.Time``...);
    ``{{json .}}`` prints the event as the API sends it."""
    from .. import events
    if not fmt:
        return events.format_line(event)
    from .format import format_template
    if fmt.strip() == "{{json .}}":
        return json.dumps(event, separators=(",", ":"))
    obj = dict(event)
    obj.update(ID=event.get("id", ""), Status=event.get("status", ""), From=event.get("from", ""),
               Scope=event.get("scope", ""), Time=event.get("time", 0),
               TimeNano=event.get("timeNano", 0))
    return format_template(fmt.replace("\\t", "\t").replace("\\n", "\n"), obj)


@click.command("events")
@click.option("--since", metavar="TIME", help="Show all events created since timestamp")
@click.option("--until", metavar="TIME", help="Stream events until this timestamp")
@click.option("-f", "--filter", "filter_", multiple=True, metavar="FILTER",
              help="Filter output based on conditions provided (type=, event=, container=, "
                   "image=, label=, network=, volume=)")
@click.option("--format", "fmt", metavar="TEMPLATE",
              help="Format the output using the given Go template")
def events(since, until, filter_, fmt):
    """Get real time events from the engine.

    Without --until it keeps printing new events until interrupted; --since (a
    duration like 10m, a Unix time, or an RFC 3339 date) first prints the past ones."""
    from .. import events as log
    filters = parse_filters(filter_)
    # Docker's client turns relative times into absolute ones before asking.
    since_t = log.parse_time(since) if since else None
    until_t = log.parse_time(until) if until else None
    out = sys.stdout
    try:
        for event in log.read(since=since_t, until=until_t, filters=filters, follow=True):
            if event is None:
                continue
            out.write(render(event, fmt) + "\n")
            out.flush()
    except BrokenPipeError:
        # `minidocker events | head -3`: the reader went away; so do we, quietly.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    return 0
