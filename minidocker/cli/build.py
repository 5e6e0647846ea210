"""``minidocker build``: a Dockerfile and a context directory -> an image (Docker's flags)."""

from __future__ import annotations

import os
import shutil
import sys

import click

from .. import paths
from .. import scratch as scratch_space
from ..build.builder import Build


def _build_args(items) -> dict[str, str]:
    """``--build-arg K=V``; a bare ``--build-arg K`` takes K from our environment
    (and is dropped if we have none), as in Docker."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if eq:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name and optionally a tag in the 'name:tag' format")
@click.option("-f", "--file", "dockerfile", metavar="PATH",
              help="Name of the Dockerfile (default: 'PATH/Dockerfile')")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V",
              help="Set build-time variables")
@click.option("--target", help="Set the target build stage to build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("-q", "--quiet", is_flag=True,
              help="Suppress the build output and print image ID on success")
@click.option("--network", default="bridge", show_default=True,
              help="Networking mode for the RUN instructions during build (bridge, none, host)")
@click.option("--label", "labels", multiple=True, metavar="K=V",
              help="Set metadata for an image")
@click.argument("context", metavar="PATH")
def build(tags, dockerfile, build_args, target, no_cache, quiet, network, labels, context):
    """Build an image from a Dockerfile."""
    labels = dict(item.partition("=")[::2] for item in labels)
    if context == "-" or dockerfile == "-":
        return _build_from_stdin(context, tags, build_args, target, no_cache, quiet, network,
                                 labels)
    if dockerfile is not None and not os.path.isabs(dockerfile) and \
            not os.path.exists(dockerfile):
        dockerfile = os.path.join(context, dockerfile)   # relative to the context
    if dockerfile is not None:
        dockerfile = os.path.abspath(dockerfile)
    Build(context, dockerfile=dockerfile, tags=tags, build_args=_build_args(build_args),
          target=target, no_cache=no_cache, quiet=quiet, network=network, labels=labels).run()


def _build_from_stdin(context, tags, build_args, target, no_cache, quiet, network, labels):
    """``build - < Dockerfile`` (no context at all) or ``build -f - DIR``: the Dockerfile
    comes from stdin and is written to a scratch file for the build."""
    scratch = scratch_space.mkdtemp(paths.data_root(), "stdin-build")
    try:
        dockerfile = os.path.join(scratch, "Dockerfile")
        with open(dockerfile, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        if context == "-":
            context = os.path.join(scratch, "empty-context")
            os.mkdir(context)
        Build(context, dockerfile=dockerfile, tags=tags, build_args=_build_args(build_args),
              target=target, no_cache=no_cache, quiet=quiet, network=network,
              labels=labels).run()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
