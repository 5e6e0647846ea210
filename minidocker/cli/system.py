"""``minidocker system``: the data root as a whole. ``check [--repair]`` (is every record
true? podman 5's ``system check``), ``df`` (where the disk went, Docker's columns),
``prune`` (remove what nothing uses, Docker's wording); and ``service``, which serves
Docker's Engine API on a socket, so that the ``docker`` CLI, docker-compose and
docker-py drive minidocker (``DOCKER_HOST=unix:///run/minidocker.sock docker ps``)."""

from __future__ import annotations

import json
import sys

import click

from ..engine import usage
from ..engine import volumes as vol
from ..engine.check import system_check
from ..engine.images import prune_images
from ..engine.lifecycle import reconcile_all
from ..image.describe import NONE
from ..image.reference import split_familiar
from ..image.store import Store
from ..network import prune_networks
from ..units import human_size
from .containers import _status
from .format import ago, table
from .images import created_ago, short_id


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
    code = system_check(repair=repair, say=click.echo,
                        warn=lambda line: click.echo(line, err=True))
    sys.exit(code)


# =========================================================================== df
def _reclaimable(reclaimable: int, total: int) -> str:
    """Docker's RECLAIMABLE cell: ``11.6MB (70%)``, without the percentage when the
    total is 0."""
    if total > 0:
        return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable)


@system.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
def df(verbose):
    """Show minidocker disk usage."""
    store = Store()
    containers = reconcile_all()
    images = usage.image_usage(store, containers)
    ctrs = usage.container_usage(containers)
    vols = usage.volume_usage(containers)
    cache = usage.build_cache_usage(store)
    if verbose:
        _df_verbose(images, ctrs, vols, cache)
        return
    total_layers = usage.layers_size(store)
    used = usage.used_layers_size(store, images)
    ctr_size = sum(c["size"] for c in ctrs)
    ctr_idle = sum(c["size"] for c in ctrs if not c["container"].state["State"].get("Running"))
    vol_size = sum(v["size"] for v in vols)
    vol_idle = sum(v["size"] for v in vols if not v["links"])
    cache_size = sum(e["size"] for e in cache)
    cache_idle = sum(e["size"] for e in cache if not e["alive"])
    rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            ["Images", str(len(images)), str(sum(1 for i in images if i["containers"])),
             human_size(total_layers), _reclaimable(max(total_layers - used, 0), total_layers)],
            ["Containers", str(len(ctrs)),
             str(sum(1 for c in ctrs if c["container"].state["State"].get("Running"))),
             human_size(ctr_size), _reclaimable(ctr_idle, ctr_size)],
            ["Local Volumes", str(len(vols)), str(sum(1 for v in vols if v["links"])),
             human_size(vol_size), _reclaimable(vol_idle, vol_size)],
            ["Build Cache", str(len(cache)), str(sum(1 for e in cache if e["alive"])),
             human_size(cache_size), _reclaimable(cache_idle, cache_size)]]
    click.echo(table(rows))


def _df_verbose(images, ctrs, vols, cache):
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE",
             "CONTAINERS"]]
    for i in images:
        for key in i["tags"] or [None]:
            repo, tag = split_familiar(key) if key else (NONE, NONE)
            rows.append([repo, tag, short_id(i["id"]), created_ago(i["created"]),
                         human_size(i["size"]), human_size(i["shared"]), human_size(i["unique"]),
                         str(i["containers"])])
    click.echo("Images space usage:\n")
    click.echo(table(rows))
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS",
             "NAMES"]]
    for entry in ctrs:
        c = entry["container"]
        command = " ".join([c.state["Path"], *c.state["Args"]])
        command = json.dumps(command if len(command) <= 20 else command[:19] + "…",
                              ensure_ascii=False)
        rows.append([c.short_id, c.state.get("ImageName") or c.image_id[7:19], command,
                     str(entry["volumes"]), human_size(entry["size"]), ago(c.state["Created"]),
                     _status(c), c.name])
    click.echo("\nContainers space usage:\n")
    click.echo(table(rows))
    rows = [["VOLUME NAME", "LINKS", "SIZE"]]
    rows += [[v["name"], str(v["links"]), human_size(v["size"])] for v in vols]
    click.echo("\nLocal Volumes space usage:\n")
    click.echo(table(rows))
    click.echo(f"\nBuild cache usage: {human_size(sum(e['size'] for e in cache))}\n")
    rows = [["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]]
    for e in cache:
        rows.append([e["key"][:25], "regular", human_size(e["size"]), ago(e["created"]),
                     ago(e["created"]), "1", "false"])
    click.echo(table(rows))


# =========================================================================== prune
@system.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused images not just dangling ones")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
def prune(all_, volumes, force):
    """Remove unused data: stopped containers, networks no container is on, dangling
    images (every unused one with -a), build cache, and with --volumes anonymous
    volumes no container uses."""
    if not force:
        warnings = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            warnings.append("all anonymous volumes not used by at least one container")
        warnings.append("all images without at least one container associated to them"
                        if all_ else "all dangling images")
        warnings.append("all build cache" if all_ else "all dangling build cache")
        click.echo("WARNING! This will remove:")
        for w in warnings:
            click.echo(f"  - {w}")
        click.echo("")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    store = Store()
    reclaimed = 0
    ids, size = usage.prune_containers()
    reclaimed += size
    _section("Deleted Containers:", ids)
    _section("Deleted Networks:", prune_networks())
    if volumes:
        names, size = vol.prune()
        reclaimed += size
        _section("Deleted Volumes:", names)
    report = prune_images(all_, store)
    reclaimed += report["SpaceReclaimed"]
    _section("Deleted Images:", [f"{what.lower()}: {name}" for done in report["ImagesDeleted"]
                                 for what, name in done.items()])
    keys, size = usage.prune_build_cache(store, everything=all_)
    reclaimed += size
    _section("Deleted build cache objects:", keys)
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")


def _section(title: str, lines: list[str]) -> None:
    """One part of prune's report, as Docker prints it: the title, a line each, a blank
    line; nothing at all when nothing was removed."""
    if lines:
        click.echo(title)
        for line in lines:
            click.echo(line)
        click.echo("")


@system.command()
@click.option("-H", "--host", default="unix:///run/minidocker.sock", show_default=True,
              metavar="ADDRESS",
              help="Where to listen: unix:///PATH, or tcp://127.0.0.1:PORT (unauthenticated)")
@click.option("-D", "--debug", is_flag=True, help="Print each request and its answer on stderr")
def service(host, debug):
    """Serve the Docker Engine API (v1.41) until stopped (SIGTERM, Ctrl-C).

    Containers keep running when the service stops: each has its own monitor process.
    """
    from ..api.server import Server
    server = Server(host, debug=debug)
    if server.kind == "tcp":
        click.echo(f"minidocker: warning: serving the API on {host} without any "
                   "authentication: whoever can connect to it is root on this machine",
                   err=True)
    server.bind()
    server.install_signal_handlers()
    click.echo(f"minidocker: API listening on {host}", err=True)
    server.serve_forever()
