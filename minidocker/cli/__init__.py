"""The ``minidocker`` command: Docker's verbs, as thin click commands over the engine.

Commands are loaded lazily: ``minidocker run`` imports only what ``run`` needs, so a
container starts without paying for the registry client (nor, off a bridge, pyroute2). Each verb lives in
a module of this package; :data:`COMMANDS` says which.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from ..errors import MinidockerError

#: verb -> "module:function" inside minidocker.cli
COMMANDS: dict[str, str] = {
    # containers (engine)
    "run": "containers:run",
    "create": "containers:create",
    "start": "containers:start",
    "ps": "containers:ps",
    "logs": "containers:logs",
    "stop": "containers:stop",
    "kill": "containers:kill",
    "rm": "containers:rm",
    "pause": "containers:pause",
    "unpause": "containers:unpause",
    "exec": "containers:exec_",
    "inspect": "containers:inspect",
    "wait": "containers:wait",
    "top": "containers:top",
    "restart": "containers:restart",
    "rename": "containers:rename",
    "attach": "attach:attach",
    "cp": "cp:cp",
    "stats": "stats:stats",
    # images (image store)
    "images": "images:images",
    "bootstrap": "images:bootstrap",
    "import": "images:import_",
    "tag": "images:tag",
    "rmi": "images:rmi",
    "history": "images:history",
    "image": "images:image",
    # layers (diff/commit/save/load)
    "diff": "layers:diff",
    "commit": "layers:commit",
    "save": "layers:save",
    "load": "layers:load",
    "export": "layers:export",
    # build
    "build": "build:build",
    # registry
    "pull": "registry:pull",
    "push": "registry:push",
    "login": "registry:login",
    "logout": "registry:logout",
    "registry": "registry:registry",
    # network and volumes
    "network": "network:network",
    "port": "network:port",
    "volume": "volumes:volume",
    # the event log
    "events": "events:events",
    # the data root as a whole, and the Engine API service
    "system": "system:system",
}


class LazyGroup(click.Group):
    """The verbs of :data:`COMMANDS`, each module imported only when its verb is run."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", envvar="MINIDOCKER_ROOT",
              help="Data root (default /var/lib/minidocker, or $MINIDOCKER_ROOT).")
@click.version_option(package_name="minidocker")
def cli(root):
    """minidocker: a small Docker, to learn how Docker works by rebuilding it."""
    if root:
        # Exported so that helper processes (container monitors) see the same root.
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(root)


def main(argv=None):
    try:
        # standalone_mode=False: click returns a command's exit code instead of exiting
        code = cli.main(args=argv, prog_name="minidocker", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except MinidockerError as e:
        click.echo(f"minidocker: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        # Docker: the error on one line, a pointer to the help on the next, exit 125.
        click.echo(f"minidocker: {e.format_message()}", err=True)
        if e.ctx is not None:
            click.echo(f"See '{e.ctx.command_path} --help'.", err=True)
        sys.exit(125)
    except click.ClickException as e:
        click.echo(f"minidocker: {e.format_message()}", err=True)
        sys.exit(125)
    except click.exceptions.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
