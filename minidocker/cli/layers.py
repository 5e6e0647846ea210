"""Layer verbs: diff, commit, save, load, export (the "Docker Images: Layers",
"Container layers", "docker commit" and "docker save" slides).

Flags and output follow ``docker``: ``diff`` prints ``C /root``-style lines, ``commit``
the new image id in full, ``load`` ``Loaded image: NAME:TAG``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import click

from .. import scratch
from ..crashpoint import reached
from ..engine.commit import commit_container, container_diff, export_container
from ..engine.containers import resolve
from ..errors import InvalidInput, MinidockerError
from ..image.load import load_archive
from ..image.save import save_images
from ..image.store import Store

TERMINAL_REFUSAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def _store():
    return Store()


def _container(ref):
    return resolve(ref)


# =========================================================================== diff
@click.command("diff")
@click.argument("container")
def diff(container):
    """Inspect changes to files or directories on a container's filesystem.

    A  a file or directory was added;  D  deleted;  C  changed."""
    for change in container_diff(_container(container), _store()):
        click.echo(str(change))


# =========================================================================== commit
@click.command("commit")
@click.option("-a", "--author", default="",
              help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("--pause/--no-pause", "pause", default=True, show_default=True,
              help="Pause container during commit")
@click.argument("container")
@click.argument("repository", required=False)
def commit(author, changes, message, pause, container, repository):
    """Create a new image from a container's changes. Prints the new image's id."""
    image_id = commit_container(_container(container), repository, message=message,
                                author=author, changes=changes, pause=pause,
                                store=_store())
    click.echo(image_id)


# =========================================================================== save
def _open_output(output: str | None):
    """``-o FILE`` (written to a temp name, renamed when complete: a failed save leaves
    no half archive) or stdout, which must not be a terminal.

    The temp name says which process writes it (``.minidocker-save-<pid>-<start>-…``,
    :mod:`minidocker.scratch`): a save killed before its rename leaves one behind,
    which the next save into the same directory removes."""
    if output is None:
        if sys.stdout.isatty():
            raise MinidockerError(TERMINAL_REFUSAL)
        return sys.stdout.buffer, None
    directory = os.path.dirname(os.path.abspath(output))
    try:
        for name in os.listdir(directory):
            if name.startswith(".minidocker-save-") and \
                    scratch.is_stale(os.path.join(directory, name)):
                os.unlink(os.path.join(directory, name))
    except OSError:
        pass
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + scratch.prefix("minidocker-save"))
    except OSError as e:
        raise InvalidInput(f"failed to save: open {output}: {e.strerror.lower()}") from None
    return os.fdopen(fd, "wb"), tmp


def _finish_output(f, tmp, output, ok: bool):
    if tmp is None:
        f.flush()
        return
    f.close()
    if ok:
        os.chmod(tmp, 0o644 & ~_umask())
        reached("archive-written")
        os.rename(tmp, output)
    else:
        os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@click.command("save")
@click.option("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT")
@click.argument("images", nargs=-1, required=True)
def save(output, images):
    """Save one or more images to a tar archive (streamed to STDOUT by default).

    The archive holds both an OCI image layout and Docker's manifest.json."""
    store = _store()
    f, tmp = _open_output(output)
    ok = False
    try:
        save_images(store, list(images), f)
        ok = True
    finally:
        _finish_output(f, tmp, output, ok)


# =========================================================================== load
@click.command("load")
@click.option("-i", "--input", "input_", metavar="FILE",
              help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
def load(input_, quiet):
    """Load an image from a tar archive or STDIN (docker save, podman docker-archive or
    oci-archive; gzip, bzip2, xz or zstd compressed)."""
    store = _store()
    if input_ is None:
        if sys.stdin.isatty():
            raise MinidockerError("requested load from stdin, but stdin is empty")
        load_archive(store, sys.stdin.buffer, say=click.echo)
        return
    try:
        f = open(input_, "rb")
    except OSError as e:
        raise InvalidInput(f"open {input_}: {e.strerror.lower()}") from None
    with f:
        load_archive(store, f, say=click.echo)


# =========================================================================== export
@click.command("export")
@click.option("-o", "--output", metavar="FILE", help="Write to a file, instead of STDOUT")
@click.argument("container")
def export(output, container):
    """Export a container's filesystem as a tar archive."""
    c = _container(container)
    f, tmp = _open_output(output)
    ok = False
    try:
        export_container(c, f, _store())
        ok = True
    finally:
        _finish_output(f, tmp, output, ok)
