"""Registry verbs: pull, push, login, logout, and ``registry serve`` (the embedded one).

Flags and output follow ``docker pull/push/login/logout``; ``registry serve`` is
minidocker's own (Docker ships the registry as a separate program, ``registry serve``).
"""

from __future__ import annotations

import sys

import click

from ..errors import InvalidInput
from ..image import reference
from ..image.store import Store
from ..registry import auth, client, server
from ..registry.transport import Registry


def _store():
    return Store()


@click.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Pick this platform from a multi-arch image (default: this machine's)")
def pull(name, quiet, platform):
    """Download an image from a registry."""
    ref = reference.parse(name)
    if not quiet and ref.digest is None and "@" not in name and \
            ":" not in name.rsplit("/", 1)[-1]:
        click.echo("Using default tag: latest")
    client.pull(name, _store(), sys.stdout, quiet=quiet, platform=platform)
    click.echo(str(ref))            # the full name, as docker pull ends


@click.command()
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.option("--chunk-size", type=int, default=None, metavar="BYTES",
              help="Upload blobs larger than this in chunks (PATCH requests) instead of "
                   "one PUT (minidocker's own flag, to see both upload kinds)")
def push(name, quiet, chunk_size):
    """Upload an image to a registry."""
    if chunk_size is not None and chunk_size <= 0:
        raise InvalidInput("--chunk-size must be positive")
    digest = client.push(name, _store(), sys.stdout, chunk_size=chunk_size, quiet=quiet)
    if quiet:
        click.echo(digest)


def _server_name(server):
    """``docker login localhost:5000`` -> ``localhost:5000``; a URL is reduced to its
    host; no server means Docker Hub."""
    if not server:
        return "docker.io"
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix):]
    return server.split("/", 1)[0]


@click.command()
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username")
@click.option("-p", "--password", help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
def login(server, username, password, password_stdin):
    """Log in to a registry (credentials are checked, then saved in config.json)."""
    host = _server_name(server)
    if password and password_stdin:
        raise InvalidInput("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidInput("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    registry_host = "registry-1.docker.io" if host == "docker.io" else host
    registry = Registry(registry_host, (username, password))
    registry.login()            # a 401 here means wrong credentials
    if registry.challenge and registry.challenge[0] != "none":
        # With Basic the ping above did not carry them yet: one request that does.
        registry.request("GET", "/v2/").close()
    auth.save_credentials(host, username, password)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server):
    """Log out from a registry."""
    host = _server_name(server)
    if auth.remove_credentials(host):
        click.echo(f"Removing login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")


@click.group()
def registry():
    """Run a registry (the Distribution v2 API) on this machine."""


@registry.command()
@click.option("--addr", default="127.0.0.1:5000", show_default=True,
              help="HOST:PORT to listen on (port 0: any free port)")
@click.option("--root", "root", default="/var/lib/minidocker-registry", show_default=True,
              type=click.Path(file_okay=False), help="Directory for the registry's content")
@click.option("--htpasswd", type=click.Path(exists=True, dir_okay=False),
              help="Require basic auth, users from this htpasswd file")
@click.option("-q", "--quiet", is_flag=True, help="Do not log requests")
def serve(addr, root, htpasswd, quiet):
    """Serve images over HTTP until interrupted."""
    try:
        srv = server.make_server(addr, root, htpasswd, quiet)
    except OSError as e:
        raise InvalidInput(f"cannot listen on {addr}: {e.strerror}") from None
    click.echo(f"minidocker registry listening on {srv.url} (storage: {srv.storage.root})")
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
