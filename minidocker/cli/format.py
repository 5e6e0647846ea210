"""Output helpers shared by the commands: Docker-style tables, ages and sizes."""

from __future__ import annotations

import datetime


def table(header: list[str], rows: list[list[str]], pad: int = 3) -> str:
    """Columns padded like Docker's tabwriter (the last column is not padded)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(str(cell))) for w, cell in zip(widths, row)]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(w + pad) for cell, w in zip(row[:-1], widths)]
        lines.append(("".join(cells) + str(row[-1])).rstrip())
    return "\n".join(lines)


def parse_time(text: str) -> datetime.datetime | None:
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    # Python 3.11's fromisoformat takes at most 6 fractional digits
    if "." in text:
        head, _, rest = text.partition(".")
        n = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(n, 6)]}{rest[n:]}"
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def human_duration(seconds: float) -> str:
    """Docker's go-units HumanDuration: "Less than a second", "5 seconds", "About a minute"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def since(text: str) -> float:
    t = parse_time(text)
    if t is None:
        return 0.0
    return (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()


def ago(text: str) -> str:
    return f"{human_duration(since(text))} ago" if parse_time(text) else ""
