"""Image verbs: ``images``, ``bootstrap``, ``import``, ``tag``, ``rmi``, ``history`` and the
``image`` group (``ls``, ``rm``, ``prune``, ``inspect``, ``history``, ``tag``, ``import``).

Output follows Docker's: the same columns, the same "4 minutes ago" and "2.05MB", the
same ``Untagged:``/``Deleted:`` lines, the same error texts and exit codes.
"""

from __future__ import annotations

import fnmatch
import sys
import time

import click

from ..errors import Conflict, InvalidInput, MinidockerError, NotFound
from ..units import human_size
from .format import format_listing, human_duration, print_inspected, table

NONE = "<none>"


# =========================================================================== formatting
def created_ago(created: str, now: float | None = None) -> str:
    from .. import clock
    when = clock.parse(created)
    if when is None:
        return "N/A"
    return human_duration((now or time.time()) - when) + " ago"


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def ellipsis(text: str, width: int) -> str:
    """Docker's ``stringutils.Ellipsis``: cut to ``width`` characters, the last one "…"."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _store():
    from ..image.store import Store
    return Store()


# =========================================================================== images
def _split_repo_tag(key: str) -> tuple[str, str]:
    from ..image.reference import split_familiar
    return split_familiar(key)


def _intermediate_ids(images: list[dict], store) -> set[str]:
    """Untagged images whose layers are a strict prefix of another image's: the steps a
    build leaves behind. ``docker images`` hides them unless ``-a``."""
    chains = {i["id"]: store.image_diff_ids(i["id"]) for i in images}
    hidden = set()
    for image in images:
        if image["tags"]:
            continue
        mine = chains[image["id"]]
        for other, theirs in chains.items():
            if other != image["id"] and len(theirs) > len(mine) and theirs[:len(mine)] == mine:
                hidden.add(image["id"])
                break
    return hidden


def _parse_filters(filters) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise InvalidInput(f"bad format of filter (expected name=value): {f}")
        if key not in ("dangling", "reference"):
            raise InvalidInput(f"invalid filter '{key}'")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"invalid filter 'dangling={value}'")
        out.setdefault(key, []).append(value)
    return out


def _matches_repository(key: str, wanted: str) -> bool:
    """``docker images busybox`` / ``busybox:1.36`` / ``john1/*``: compare with the
    familiar repository (and tag, if given)."""
    repo, tag = _split_repo_tag(key)
    want_repo, want_tag = _split_repo_tag(wanted)
    if not fnmatch.fnmatchcase(repo, want_repo):
        return False
    return not want_tag or fnmatch.fnmatchcase(tag, want_tag)


def _display_keys(keys: list[str]) -> list[tuple[str | None, str | None]]:
    """(reference, digest) per row, as ``docker images`` groups them: one row per tag;
    a digest reference (``repo@sha256:...``) gets a row of its own only when its
    repository has no tag on this image (else it is that row's DIGEST)."""
    if not keys:
        return [(None, None)]
    digests = {_repo_of(k): _split_repo_tag(k)[1] for k in keys if "@" in k}
    tagged = {_repo_of(k) for k in keys if "@" not in k}
    rows = [(k, digests.get(_repo_of(k))) for k in keys if "@" not in k]
    rows += [(k, _split_repo_tag(k)[1]) for k in keys if "@" in k and _repo_of(k) not in tagged]
    return rows


def image_rows(store, all_images=False, repository=None, filters=None):
    """Rows of ``docker images``: one per tag, ``<none>`` for an untagged image."""
    filters = filters or {}
    images = store.list_images()
    hidden = set() if all_images else _intermediate_ids(images, store)
    rows = []
    for image in images:
        if image["id"] in hidden:
            continue
        dangling = not image["tags"]
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            if dangling != want:
                continue
        for key, digest in _display_keys(image["tags"]):
            if repository and (key is None or not _matches_repository(key, repository)):
                continue
            if "reference" in filters and (key is None or not any(
                    _matches_repository(key, p) for p in filters["reference"])):
                continue
            repo, tag = _split_repo_tag(key) if key else (NONE, NONE)
            if key and "@" in key:
                tag = NONE  # a digest reference has no tag
            rows.append({"repository": repo, "tag": tag, "id": image["id"],
                         "digest": digest or NONE,
                         "created": image["created"], "size": image["size"]})
    return rows



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
        from ..image.reference import parse
        if "*" not in repository:
            parse(repository, default_tag=False)
    rows = image_rows(store, all_images, repository, _parse_filters(filters))
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
    from ..image import bootstrap as boot
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
    from ..image.bootstrap import import_tarball
    if repository:
        from ..image.reference import parse
        parse(repository)
    if file == "-":
        image_id = import_tarball(sys.stdin.buffer, repository, "-", message, changes)
    else:
        try:
            f = open(file, "rb")
        except OSError as e:
            raise InvalidInput(f"open {file}: {e.strerror.lower()}") from None
        with f:
            image_id = import_tarball(f, repository, file, message, changes)
    click.echo(image_id)


# =========================================================================== tag
@click.command("tag")
@click.argument("source")
@click.argument("target")
def tag(source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from ..image.reference import parse
    store = _store()
    target_ref = parse(target, default_tag=True)
    if target_ref.digest:
        raise InvalidInput("refusing to create a tag with a digest reference")
    try:
        image_id = store.resolve(source)
    except NotFound:
        raise NotFound(f"No such image: {_display_ref(source)}") from None
    store.tag(image_id, target)


def _display_ref(ref: str) -> str:
    """How Docker names a missing image in "No such image: X": a name gets its tag."""
    from ..image.reference import familiar
    try:
        return familiar(ref)
    except InvalidInput:
        return ref


# =========================================================================== rmi
def _containers_using(image_id: str) -> list[tuple[str, bool]]:
    """``(container id, running?)`` for each container made from the image, as the
    engine knows them (an empty list until the engine exists)."""
    try:
        from ..engine.containers import users_of
    except ImportError:
        return []
    found = []
    for user in users_of(image_id) or []:
        if isinstance(user, str):
            found.append((user, False))
        else:
            found.append((user.id, getattr(user, "status", "") in ("running", "paused",
                                                                    "restarting")))
    return found


def _is_id_reference(ref: str, image_id: str) -> bool:
    """Did the user name the image by id (``sha256:abc``, ``abc``)? Docker's
    ``isImageIDPrefix``."""
    hexpart = ref[7:] if ref.startswith("sha256:") else ref
    return bool(hexpart) and image_id[7:].startswith(hexpart)


def remove_image(store, ref: str, force: bool = False) -> list[str]:
    """Docker's ``ImageDelete``, step by step. Returns the ``Untagged:``/``Deleted:`` lines.

    - by name: untag it; if the image has other tags, that is all. If that was the
      last tag, the image goes too -- unless a container uses it (refused without -f;
      with -f the image stays, untagged).
    - by id: refused when tags from several repositories point at it (unless -f);
      otherwise every tag is removed and the image deleted, unless a container uses
      it (refused without -f; with -f the image stays, untagged, so that the
      container keeps its layers).
    """
    lines = []
    try:
        image_id = store.resolve(ref)
    except NotFound:
        raise NotFound(f"No such image: {_display_ref(ref)}") from None
    users = _containers_using(image_id)
    running = [cid for cid, is_running in users if is_running]
    tags = store.tags_of(image_id)
    by_name = not _is_id_reference(ref, image_id) or (
        ref in tags or _normalised(ref) in tags)
    if by_name:
        key = _normalised(ref)
        if key not in tags:
            raise NotFound(f"No such image: {key}")
        if len(tags) == 1 and users and not force:
            raise Conflict(f'conflict: unable to remove repository reference "{ref}" '
                           f"(must force) - container {users[0][0][:12]} is using its "
                           f"referenced image {short_id(image_id)}")
        store.untag(key)
        lines.append(f"Untagged: {key}")
        remaining = [t for t in tags if t != key]
        same_repo = [t for t in remaining if _repo_of(t) == _repo_of(key)]
        if same_repo and all("@" in t for t in same_repo):
            # Docker: with the repository's last tag gone, its digest references
            # (name@sha256:..., from a pull) go too.
            for digest_ref in same_repo:
                store.untag(digest_ref)
                lines.append(f"Untagged: {digest_ref}")
                remaining.remove(digest_ref)
        if remaining or users:
            return lines
    else:
        repositories = {_repo_of(t) for t in tags}
        if len(repositories) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           "forced) - image is referenced in multiple repositories")
        if running:
            # Docker's "hard" conflict: not even -f removes an image a running
            # container is using.
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (cannot be "
                           f"forced) - image is being used by running container "
                           f"{running[0][:12]}")
        if users and not force:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           f"forced) - image is being used by stopped container "
                           f"{users[0][0][:12]}")
        for key in tags:
            store.untag(key)
            lines.append(f"Untagged: {key}")
        if users:
            return lines
    for removed in store.delete_image(image_id):
        lines.append(f"Deleted: {removed}")
    return lines


def _repo_of(key: str) -> str:
    return _split_repo_tag(key)[0]


def _normalised(ref: str) -> str:
    from ..image.store import normalize_name
    try:
        return normalize_name(ref)
    except InvalidInput:
        return ref


@click.command("rmi")
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.argument("images", nargs=-1, required=True)
def rmi(force, images):
    """Remove one or more images."""
    store = _store()
    failed = False
    for ref in images:
        try:
            for line in remove_image(store, ref, force):
                click.echo(line)
        except MinidockerError as e:
            # Docker goes on with the other images, then exits 1.
            click.echo(f"minidocker: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)  # (click.exceptions.Exit is swallowed by main()'s standalone_mode=False)


# =========================================================================== history
def history_rows(store, image_id: str) -> list[dict]:
    """One row per history entry, newest first; a row that made a layer gets its size."""
    config = store.image_config(image_id)
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    entries = list(config.get("history") or [])
    if not entries:
        entries = [{"created": config.get("created", "")} for _ in diff_ids]
    rows = []
    layer = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer") and layer < len(diff_ids):
            size = store.layer_size(diff_ids[layer])
            layer += 1
        rows.append({"created": entry.get("created", ""),
                     "created_by": entry.get("created_by", ""),
                     "comment": entry.get("comment", ""), "size": size})
    rows.reverse()
    for i, row in enumerate(rows):
        row["id"] = image_id if i == 0 else None
    return rows


@click.command("history")
@click.option("-H", "--human", type=bool, default=True, show_default=True,
              help="Print sizes and dates in human readable format.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.argument("image")
def history(human, quiet, no_trunc, image):
    """Show the history of an image."""
    store = _store()
    try:
        image_id = store.resolve(image)
    except NotFound:
        raise NotFound(f"No such image: {_display_ref(image)}") from None
    rows = history_rows(store, image_id)
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
def inspect_image(store, image_id: str) -> dict:
    """What ``docker image inspect`` shows, from our records."""
    config = store.image_config(image_id)
    manifest = store.image_manifest(image_id)
    tags = store.tags_of(image_id)
    history = config.get("history") or []
    return {
        "Id": image_id,
        "RepoTags": [t for t in tags if "@" not in t],
        "RepoDigests": [t for t in tags if "@" in t],
        "Parent": "",
        "Comment": (history[-1].get("comment", "") if history else ""),
        "Created": config.get("created", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config", {}),
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": store.image_size(image_id),
        "RootFS": {"Type": config.get("rootfs", {}).get("type", "layers"),
                   "Layers": list(config.get("rootfs", {}).get("diff_ids", []))},
        "Manifest": {"mediaType": manifest.get("mediaType"),
                     "layers": manifest.get("layers", [])},
        # Where the layers are on disk, top-most first, as overlayfs' lowerdir wants
        # them (Docker shows its overlay2 directories here too).
        "GraphDriver": {"Name": "overlay",
                        "Data": {"LowerDir": ":".join(reversed(store.layer_dirs(image_id)))}},
        "Metadata": {"LastTagTime": ""},
    }


@click.command("inspect")
@click.option("-f", "--format", "fmt", default=None, help="Format output using a Go-like template.")
@click.argument("images", nargs=-1, required=True)
def image_inspect(fmt, images):
    """Display detailed information on one or more images."""
    store = _store()
    found, errors = [], []
    for ref in images:
        try:
            found.append(inspect_image(store, store.resolve(ref)))
        except NotFound:
            errors.append(f"Error: No such image: {ref}")
    print_inspected(found, fmt, errors)


# =========================================================================== prune
def prune_images(store, all_images: bool = False) -> tuple[list[str], int]:
    """Remove dangling images (untagged), or with ``all_images`` every image no container
    uses; then garbage-collect unreferenced blobs and layers. Returns (lines, bytes)."""
    lines, reclaimed = [], 0
    images = store.list_images()
    # Without -a, like Docker: only *dangling* images, i.e. untagged and not the
    # parent of another image (a build's intermediate steps are its cache).
    keep = set() if all_images else _intermediate_ids(images, store)
    for image in images:
        if (image["tags"] and not all_images) or image["id"] in keep:
            continue
        if _containers_using(image["id"]):
            continue
        reclaimed_before = _layer_bytes(store)
        for key in image["tags"]:
            store.untag(key)
            lines.append(f"untagged: {key}")
        try:
            removed = store.delete_image(image["id"])
        except NotFound:
            continue  # someone else removed it meanwhile
        lines += [f"deleted: {r}" for r in removed]
        reclaimed += max(0, reclaimed_before - _layer_bytes(store))
    removed_blobs, freed = store.collect_garbage()
    reclaimed += freed
    return lines, reclaimed


def _layer_bytes(store) -> int:
    import os
    total = 0
    try:
        names = os.listdir(store.layerdb_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.endswith(".json"):
            total += store.layer_size("sha256:" + name[:-5])
    return total


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
    lines, reclaimed = prune_images(_store(), all_images)
    if lines:
        click.echo("Deleted Images:")
        for line in lines:
            click.echo(line)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")


# =========================================================================== image group
class _ImageGroup(click.Group):
    """``minidocker image VERB``: our verbs, plus the image verbs other modules own
    (``save``, ``load``, ``pull``, ``push``, ``build``), found lazily."""

    BORROWED = ("build", "load", "pull", "push", "save")

    def list_commands(self, ctx):
        names = set(super().list_commands(ctx))
        names.update(n for n in self.BORROWED if self._borrowed(n) is not None)
        return sorted(names)

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or (
            self._borrowed(name) if name in self.BORROWED else None)

    @staticmethod
    def _borrowed(name):
        import importlib
        from . import COMMANDS
        module, _, attr = COMMANDS.get(name, ":").partition(":")
        if not module:
            return None
        try:
            return getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        except (ImportError, AttributeError):
            return None


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
