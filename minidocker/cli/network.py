"""``minidocker network ...`` and ``minidocker port``: Docker's verbs for networks.

pyroute2 is imported only by the subcommands that touch the kernel (create, rm, prune,
connect and disconnect of a running container);
``network ls`` and ``port`` read JSON files.
"""

from __future__ import annotations

import sys

import click

from ..errors import MinidockerError, NotFound


@click.group()
def network():
    """Manage networks."""


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
def ls(quiet, no_trunc):
    """List networks."""
    from ..network import cleanup_stale, records
    from .format import table
    cleanup_stale()
    rows = []
    for rec in records.all_networks():
        net_id = rec["Id"] if no_trunc else rec["Id"][:12]
        rows.append([net_id, rec["Name"], rec["Driver"], rec["Scope"]])
    if quiet:
        for row in rows:
            click.echo(row[0])
        return
    click.echo(table([["NETWORK ID", "NAME", "DRIVER", "SCOPE"], *rows]))


def _parse_labels(items) -> dict:
    return dict(item.partition("=")[::2] for item in items)


@network.command("create")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network")
@click.option("--subnet", help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", help="IPv4 Gateway for the master subnet")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.argument("name")
def create(driver, subnet, gateway, label, internal, name):
    """Create a network (a new Linux bridge with its own subnet)."""
    from ..network import create_network
    if driver != "bridge":
        raise MinidockerError(f"plugin \"{driver}\" not found: minidocker only has the bridge driver")
    if gateway and not subnet:
        raise MinidockerError("every ip-range or gateway must have a corresponding subnet")
    rec = create_network(name, subnet=subnet, gateway=gateway, labels=_parse_labels(label),
                         internal=internal)
    click.echo(rec["Id"])


@network.command("rm")
@click.argument("networks", nargs=-1, required=True)
def rm(networks):
    """Remove one or more networks."""
    from ..network import cleanup_stale, remove_network
    cleanup_stale()
    failed = False
    for ref in networks:
        try:
            remove_network(ref)
            click.echo(ref)
        except MinidockerError as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@network.command("inspect")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template")
@click.argument("networks", nargs=-1, required=True)
def inspect(fmt, networks):
    """Display detailed information on one or more networks."""
    from ..network import containers_on, records as store
    from .format import print_inspected
    results, errors = [], []
    for ref in networks:
        try:
            rec = store.get(ref)
        except NotFound:
            errors.append(f"Error response from daemon: network {ref} not found")
            continue
        results.append(dict(rec, Containers=containers_on(rec["Name"])))
    print_inspected(results, fmt, errors)


def _daemon_error(e: MinidockerError) -> None:
    """Docker's client prints what the daemon refused on one line, and exits 1."""
    click.echo(f"Error response from daemon: {e}", err=True)
    sys.exit(1)


@network.command("connect")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", help="IPv4 address (e.g., \"172.30.100.104\")")
@click.argument("network_ref", metavar="NETWORK")
@click.argument("container")
def connect(aliases, ip, network_ref, container):
    """Connect a container to a network."""
    from ..engine.endpoints import connect as connect_container
    try:
        connect_container(container, network_ref, aliases=aliases, ip=ip)
    except MinidockerError as e:
        _daemon_error(e)


@network.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.argument("network_ref", metavar="NETWORK")
@click.argument("container")
def disconnect(force, network_ref, container):
    """Disconnect a container from a network."""
    from ..engine.endpoints import disconnect as disconnect_container
    try:
        disconnect_container(container, network_ref, force=force)
    except MinidockerError as e:
        _daemon_error(e)


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
def prune(force):
    """Remove all unused user-defined networks."""
    from ..network import prune_networks
    if not force and not click.confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue?", default=False):
        return
    removed = prune_networks()
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
def port(container, private_port):
    """List port mappings or a specific mapping for the container."""
    from ..engine.containers import resolve
    from ..network.ports import format_port_lines, parse_port_proto
    c = resolve(container)
    ports = (c.state.get("NetworkSettings") or {}).get("Ports") or {}
    only = None
    if private_port:
        number, proto = parse_port_proto(private_port)
        only = f"{number}/{proto}"
    lines = format_port_lines(ports, only)
    if only and not lines:
        raise MinidockerError(f"No public port '{only}' published for {container}")
    for line in lines:
        click.echo(line)
