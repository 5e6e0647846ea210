"""``minidocker volume ...``: create, list, inspect and remove named volumes."""

from __future__ import annotations

import sys

import click

from ..errors import MinidockerError
from ..engine import volumes
from ..units import human_size
from .format import print_inspected, table


@click.group()
def volume():
    """Manage volumes."""


@volume.command("create")
@click.option("-d", "--driver", default="local", help="Specify volume driver name")
@click.option("--label", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.argument("name", required=False)
def create(driver, label, opt, name):
    """Create a volume (a directory under the data root)."""
    rec = volumes.create(name, labels=dict(l.partition("=")[::2] for l in label), driver=driver,
                         options=dict(o.partition("=")[::2] for o in opt))
    click.echo(rec["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
def ls(quiet):
    """List volumes."""
    records = volumes.list_volumes()
    if quiet:
        for rec in records:
            click.echo(rec["Name"])
        return
    click.echo(table([["DRIVER", "VOLUME NAME"], *[[r["Driver"], r["Name"]] for r in records]]))


@volume.command("inspect")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template")
@click.argument("names", nargs=-1, required=True)
def inspect(fmt, names):
    """Display detailed information on one or more volumes."""
    results, errors = [], []
    for name in names:
        try:
            results.append(volumes.inspect(name))
        except MinidockerError as e:
            errors.append(f"Error response from daemon: {e}")
    print_inspected(results, fmt, errors)


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@click.argument("names", nargs=-1, required=True)
def rm(force, names):
    """Remove one or more volumes (not while a container uses them)."""
    failed = False
    for name in names:
        try:
            volumes.remove(name, force=force)
            click.echo(name)
        except MinidockerError as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
def prune(all_, force):
    """Remove unused anonymous volumes (all unused volumes with -a)."""
    if not force and not click.confirm("WARNING! This will remove anonymous local volumes not used "
                                       "by at least one container.\nAre you sure you want to continue?",
                                       default=False):
        return
    removed, reclaimed = volumes.prune(all_volumes=all_)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")
