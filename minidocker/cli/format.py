"""Output helpers shared by the commands: Docker-style tables, templates and ages
(sizes and durations: :mod:`minidocker.units`; how long ago: :func:`minidocker.clock.since`)."""

from __future__ import annotations

import json
import re
import sys

import click

from .. import clock
from ..clock import since
from ..errors import InvalidInput
from ..units import human_duration


def table(rows: list[list[str]]) -> str:
    """Columns like Docker's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: each column as
    wide as its widest cell plus 3, at least 10; the last column unpadded."""
    if not rows:
        return ""
    widths = [max(10, max(len(r[c]) for r in rows) + 3) for c in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def ago(text: str) -> str:
    return f"{human_duration(since(text))} ago" if clock.parse(text) else ""


# (kept importable from here: the commands use them with the table helpers)
__all__ = ["ago", "format_listing", "format_template", "human_duration", "print_inspected",
           "since", "table"]


def format_template(template: str, obj) -> str:
    """A small subset of Go templates: ``{{.Id}}``, ``{{.Config.Cmd}}``,
    ``{{json .X}}``, ``{{index .RootFS.Layers 0}}`` (negative indexes count from the end)."""
    def lookup(path):
        value = obj
        for part in [p for p in path.split(".") if p]:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def evaluate(expr):
        words = expr.split()
        if len(words) == 3 and words[0] == "index":
            value = lookup(words[1])
            try:
                return value[int(words[2])] if isinstance(value, list) else \
                    (value or {}).get(words[2].strip('"'))
            except (IndexError, ValueError):
                raise InvalidInput(f"template: index out of range: {words[2]}") from None
        return lookup(expr)

    def render(match):
        expr = match.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(evaluate(expr[5:].strip()), separators=(",", ":"))
        value = evaluate(expr)
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, list):
            return "[" + " ".join(map(str, value)) + "]"
        if isinstance(value, dict):
            return "map[" + " ".join(f"{k}:{v}" for k, v in value.items()) + "]"
        return "<no value>" if value is None else str(value)

    return re.sub(r"\{\{(.*?)\}\}", render, template)


def format_listing(fmt: str, objects: list[dict], headers: dict[str, str]) -> str:
    """``ps``/``images --format``: each object through the template, one line each.
    As in Docker, ``\\t`` in the template is a tab, and a template starting with
    ``table`` prints aligned columns under a header (``headers`` names each field's
    column: ``{"Names": "NAMES"}``)."""
    template = fmt.replace("\\t", "\t")
    if not template.startswith("table"):
        return "\n".join(format_template(template, o) for o in objects)
    template = template[len("table"):].strip()
    header = re.sub(r"\{\{\s*\.(\w+)\s*\}\}",
                    lambda m: headers.get(m.group(1), m.group(1).upper()), template)
    return table([header.split("\t")] + [format_template(template, o).split("\t") for o in objects])


def print_inspected(results: list, fmt: str | None, errors: list[str]) -> None:
    """What every ``inspect`` prints, as Docker's: each object through the ``-f``
    template, or all of them as one JSON array (``[]`` when none was found); then one
    line per name not found on stderr, and exit status 1 if there was any."""
    if fmt:
        for r in results:
            click.echo(format_template(fmt, r))
    else:
        click.echo(json.dumps(results, indent=4))
    for line in errors:
        click.echo(line, err=True)
    if errors:
        sys.exit(1)  # (click.exceptions.Exit is swallowed by main()'s standalone_mode=False)
