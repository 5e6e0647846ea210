"""A tiny Sphinx extension: the CLI reference, generated from the click commands.

``.. minidocker-cli::`` expands to one section per verb with its ``--help`` text, so the
reference can never drift from the code.
"""

from __future__ import annotations

import click
from docutils import nodes
from docutils.parsers.rst import Directive


class MinidockerCli(Directive):
    has_content = False

    def run(self):
        from minidocker.cli import cli
        ctx = click.Context(cli, info_name="minidocker")
        result = [nodes.literal_block(text=cli.get_help(ctx))]
        for name in cli.list_commands(ctx):
            command = cli.get_command(ctx, name)
            section = nodes.section(ids=[f"cli-{name}"])
            section += nodes.title(text=f"minidocker {name}")
            sub = click.Context(command, info_name=f"minidocker {name}", parent=ctx)
            section += nodes.literal_block(text=command.get_help(sub))
            result.append(section)
        return result


def setup(app):
    app.add_directive("minidocker-cli", MinidockerCli)
    return {"parallel_read_safe": True}
