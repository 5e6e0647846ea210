"""``minidocker system``: the data root as a whole. ``check [--repair]`` (is every record
true? podman 5's ``system check``), ``df`` (where the disk went, Docker's columns) and
``prune`` (remove what nothing uses, Docker's wording)."""

from __future__ import annotations

import sys

import click


@click.group("system")
def system():
    """Manage minidocker's data root."""


@system.command("check")
@click.option("-r", "--repair", is_flag=True,
              help="Remove what cannot be used (a half-extracted layer, a dangling tag, "
                   "a dead command's scratch...) and say what was removed.")
def check(repair):
    """Check the consistency of the data root: blobs against their digests, layers,
    images, tags, containers, mounts, cgroups, address leases. One line per problem;
    exit status 1 when something is wrong."""
    from ..engine.check import system_check
    code = system_check(repair=repair, say=click.echo,
                        warn=lambda line: click.echo(line, err=True))
    sys.exit(code)
