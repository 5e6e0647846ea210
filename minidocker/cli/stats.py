"""``minidocker stats``: live resource use of containers, from their cgroups.

The numbers come from :mod:`minidocker.engine.stats` (the same readings the Engine
API's ``/containers/{id}/stats`` sends), with docker's columns and arithmetic. Without
``--no-stream`` the table is redrawn every second until Ctrl-C.
"""

from __future__ import annotations

import sys
import threading
import time

import click

HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
           "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
COLUMNS = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]


def _render(rows: list[dict], fmt: str | None) -> str:
    from .format import format_listing, table
    if fmt:
        return format_listing(fmt, rows, HEADERS)
    return table([[HEADERS[k] for k in COLUMNS], *[[r[k] for k in COLUMNS] for r in rows]])


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.option("--format", "fmt", help="Format output using a Go-like template ({{.Name}}\\t{{.CPUPerc}})")
@click.argument("containers", nargs=-1)
def stats(all_, no_stream, no_trunc, fmt, containers):
    """Display a live stream of container(s) resource usage statistics."""
    from ..engine import stats as engine_stats
    from ..engine.containers import resolve
    from ..engine.lifecycle import reconcile_all
    if containers:
        chosen = [resolve(ref) for ref in containers]
    else:
        chosen = [c for c in reconcile_all() if all_ or c.state["State"]["Running"]]

    def rows_of(samples):
        rows = []
        for s in samples:
            row = engine_stats.row(s)
            if no_trunc:
                row["ID"] = s["id"]
            rows.append(row)
        return rows

    if no_stream:
        # one reading per container, each with one a second before it (in parallel)
        results: list = [None] * len(chosen)

        def take(i, c):
            results[i] = engine_stats.sample_pair(c)
        threads = [threading.Thread(target=take, args=(i, c)) for i, c in enumerate(chosen)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        click.echo(_render(rows_of(results), fmt))
        return
    previous: dict = {}
    try:
        while True:
            samples = []
            for c in chosen:
                s = engine_stats.sample(c, previous.get(c.id))
                previous[c.id] = s
                samples.append(s)
            sys.stdout.write("\033[2J\033[H" + _render(rows_of(samples), fmt) + "\n")
            sys.stdout.flush()
            time.sleep(1)
    except KeyboardInterrupt:
        return
