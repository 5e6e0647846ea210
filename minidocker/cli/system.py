"""``minidocker system``: the engine as a whole. ``system service`` serves Docker's
Engine API on a socket, so that the ``docker`` CLI, docker-compose and docker-py drive
minidocker (``DOCKER_HOST=unix:///run/minidocker.sock docker ps``)."""

from __future__ import annotations

import click


@click.group()
def system():
    """Manage minidocker."""


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
