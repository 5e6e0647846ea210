"""Image verbs: ``images``, ``bootstrap``, ``import``, ``tag``, ``rmi``, ``history`` and the
``image`` group (``ls``, ``rm``, ``prune``, ``inspect``, ``history``, ``tag``, ``import``).

Output follows Docker's: the same columns, the same "4 minutes ago" and "2.05MB", the
same ``Untagged:``/``Deleted:`` lines, the same error texts and exit codes. Only the
printing is here: which rows ``images`` and ``history`` have is
:mod:`minidocker.image.describe`'s, what ``tag``, ``rmi`` and ``prune`` change is
:mod:`minidocker.image.tags`' (with the containers that hold an image from
:mod:`minidocker.engine.images`), so that the Engine API answers from the same functions.
"""

from __future__ import annotations

import importlib
import sys
import time

import click

from .. import clock
from ..engine import images as engine_images
from ..errors import InvalidInput, MinidockerError, NotFound
from ..image import bootstrap as boot
from ..image import describe, tags
from ..image.reference import parse
from ..image.store import Store
from ..units import human_size
from . import COMMANDS
from .format import format_listing, human_duration, print_inspected, table


# =========================================================================== formatting
def created_ago(created: str, now: float | None = None) -> str:
    when = clock.parse(created)
    if when is None:
        return "N/A"
    return human_duration((now or time.time()) - when) + " ago"


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def ellipsis(text: str, width: int) -> str:
    """Docker's ``stringutils.Ellipsis``: cut to ``width`` characters, the last one "…"."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _store() -> Store:
    return Store()


# =========================================================================== images
#: ``images``' columns, by the name ``--format`` knows them by (Docker's).
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
                  "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Size": "SIZE"}


@click.command("images")
@click.option("-a", "--all", "all_images", is_flag=True,
              help="Show all images (default hides intermediate images).")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="FILTER",
              help="Filter output: dangling=true|false, reference=PATTERN.")
@click.option("--format", "fmt", default=None, metavar="TEMPLATE",
              help="Go-like template per image: {{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}... "
                   "('table ...' for columns)")
@click.argument("repository", required=False)
def images(all_images, quiet, no_trunc, digests, filters, fmt, repository):
    """List images."""
    store = _store()
    if repository:
        if "*" not in repository:
            parse(repository, default_tag=False)
    rows = describe.image_rows(store, all_images, repository, describe.parse_filters(filters))
    show_id = (lambda i: i) if no_trunc else short_id
    if quiet:
        seen = []
        for row in rows:
            if show_id(row["id"]) not in seen:
                seen.append(show_id(row["id"]))
        for image_id in seen:
            click.echo(image_id)
        return
    now = time.time()
    if fmt:
        listed = [{"Repository": row["repository"], "Tag": row["tag"], "ID": show_id(row["id"]),
                   "Digest": row["digest"], "CreatedAt": row["created"],
                   "CreatedSince": created_ago(row["created"], now), "Size": human_size(row["size"])}
                  for row in rows]
        if listed or fmt.startswith("table"):
            click.echo(format_listing(fmt, listed, IMAGES_HEADERS))
        return
    out = [["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) +
           ["IMAGE ID", "CREATED", "SIZE"]]
    for row in rows:
        out.append([row["repository"], row["tag"]] + ([row["digest"]] if digests else []) +
                   [show_id(row["id"]), created_ago(row["created"], now),
                    human_size(row["size"])])
    click.echo(table(out))


# =========================================================================== bootstrap / import
@click.command("bootstrap")
@click.argument("what", type=click.Choice(["busybox", "debian"]))
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite (debian).")
@click.option("--mirror", default="http://deb.debian.org/debian", show_default=True,
              help="Debian mirror URL (debian).")
@click.option("-t", "--tag", "tag", default=None,
              help="Name the image (default busybox:latest / debian:SUITE).")
def bootstrap(what, suite, mirror, tag):
    """Make a base image locally: busybox (from the host's busybox-static) or debian
    (debootstrap --variant=minbase). Prints the image id."""
    if what == "busybox":
        click.echo("bootstrap: packing the host's static busybox", err=True)
        image_id = boot.bootstrap_busybox(tag=tag or "busybox:latest")
    else:
        click.echo(f"bootstrap: debootstrap --variant=minbase {suite} from {mirror}", err=True)
        image_id = boot.bootstrap_debian(suite=suite, mirror=mirror, tag=tag)
    click.echo(image_id)


@click.command("import")
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@click.argument("file")
@click.argument("repository", required=False)
def import_(changes, message, file, repository):
    """Import the contents from a tarball (FILE or - for stdin) to create a filesystem
    image. Prints the image id."""
    if repository:
        parse(repository)
    if file == "-":
        image_id = boot.import_tarball(sys.stdin.buffer, repository, "-", message, changes)
    else:
        try:
            f = open(file, "rb")
        except OSError as e:
            raise InvalidInput(f"open {file}: {e.strerror.lower()}") from None
        with f:
            image_id = boot.import_tarball(f, repository, file, message, changes)
    click.echo(image_id)


# =========================================================================== tag
@click.command("tag")
@click.argument("source")
@click.argument("target")
def tag(source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    tags.tag_image(_store(), source, target)


# =========================================================================== rmi
@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.argument("images", nargs=-1, required=True)
def rmi(force, images):
    """Remove one or more images."""
    store = _store()
    failed = False
    for ref in images:
        try:
            for done in engine_images.remove_image(ref, force, store):
                for what, name in done.items():
                    click.echo(f"{what}: {name}")
        except MinidockerError as e:
            # Docker goes on with the other images, then exits 1.
            click.echo(f"minidocker: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)  # (click.exceptions.Exit is swallowed by main()'s standalone_mode=False)


# =========================================================================== history
@click.command("history")
@click.option("-H", "--human", type=bool, default=True, show_default=True,
              help="Print sizes and dates in human readable format.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.argument("image")
def history(human, quiet, no_trunc, image):
    """Show the history of an image."""
    store = _store()
    rows = describe.history_rows(store, describe.find_image(store, image))
    show_id = (lambda i: i) if no_trunc else short_id
    if quiet:
        for row in rows:
            click.echo(show_id(row["id"]) if row["id"] else "<missing>")
        return
    now = time.time()
    out = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for row in rows:
        created_by = row["created_by"].replace("\t", " ").replace("\n", " ")
        if not no_trunc:
            created_by = ellipsis(created_by, 45)
        created = created_ago(row["created"], now) if human else row["created"]
        size = human_size(row["size"]) if human else str(row["size"])
        out.append([show_id(row["id"]) if row["id"] else "<missing>", created, created_by,
                    size, row["comment"]])
    click.echo(table(out))


# =========================================================================== inspect
@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go-like template.")
@click.argument("images", nargs=-1, required=True)
def image_inspect(fmt, images):
    """Display detailed information on one or more images."""
    store = _store()
    found, errors = [], []
    for ref in images:
        try:
            found.append(describe.inspect_image(store, store.resolve(ref)))
        except NotFound:
            errors.append(f"Error: No such image: {ref}")
    print_inspected(found, fmt, errors)


# =========================================================================== prune
@click.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True,
              help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def image_prune(all_images, force):
    """Remove unused images."""
    if not force:
        what = ("all images without at least one container associated to them"
                if all_images else "all dangling images")
        click.echo(f"WARNING! This will remove {what}.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    report = engine_images.prune_images(all_images, _store())
    if report["ImagesDeleted"]:
        click.echo("Deleted Images:")
        for done in report["ImagesDeleted"]:
            for what, name in done.items():
                click.echo(f"{what.lower()}: {name}")   # Docker's prune: "deleted: sha256:..."
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(report['SpaceReclaimed'], 4)}")


# =========================================================================== image group
class _ImageGroup(click.Group):
    """``minidocker image VERB``: our verbs, plus the image verbs other modules own
    (``save``, ``load``, ``pull``, ``push``, ``build``), found lazily."""

    BORROWED = ("build", "load", "pull", "push", "save")

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.BORROWED))

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or (
            self._borrowed(name) if name in self.BORROWED else None)

    @staticmethod
    def _borrowed(name):
        module, _, attr = COMMANDS[name].partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


@click.group("image", cls=_ImageGroup)
def image():
    """Manage images."""


image.add_command(images, "ls")
image.add_command(rmi, "rm")
image.add_command(image_prune, "prune")
image.add_command(image_inspect, "inspect")
image.add_command(history, "history")
image.add_command(tag, "tag")
image.add_command(import_, "import")
