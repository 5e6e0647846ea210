"""``docker commit`` and ``docker diff``: a container's writable layer, read and kept.

A container's root filesystem is the image's layers (read-only) under an overlay whose
*upper* dir takes every write (the "Container layers" slide). So:

- ``diff`` lists what the upper dir holds (``A``/``C``/``D``);
- ``commit`` packs the upper dir into one more layer tar, stores it, and writes a new
  image config: the parent's, with the container's settings and the ``-c`` changes,
  ``rootfs.diff_ids`` + the new layer, ``history`` + one entry. The new image is the
  old one plus exactly what the container did - the slide's ``cowsay`` image.

Docker keeps the files the engine itself creates in a container (mount points for
``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``, ``/proc``...) in a separate
"init" layer, so they never show up in ``diff`` nor get committed; minidocker does the
same (``containers/<id>/init``, see :mod:`minidocker.engine.overlay`). Other mount points
(volumes, ``--tmpfs``) the runtime still creates in the upper dir;
:func:`engine_made_paths` names them so that they are left out the same way.
"""

from __future__ import annotations

import copy
import os
import threading

from .. import clock, paths, scratch
from ..crashpoint import reached as crash_point
from ..errors import InvalidInput
from ..image import changes as layer_changes
from ..image.bootstrap import parse_changes
from ..image.hashing import HashingWriter
from ..image.store import Store, normalize_name
from ..kernel import mounts, syscalls
from .freezer import paused_by_command
from .lifecycle import reconcile

#: The image-config fields (OCI config.md, "config") a commit takes from the container.
COMMITTED_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes",
                    "WorkingDir", "Labels", "StopSignal")


def engine_made_paths(container) -> set[str]:
    """Paths (relative, no leading slash) that the runtime creates as mount points in
    the container's root filesystem: every mount destination of its OCI bundle.

    While the container runs, a mount covers each of them, so nothing the container
    writes there lands in the upper dir: anything the upper dir has at such a path is
    the empty file or directory the runtime made to mount on."""
    spec_path = os.path.join(container.bundle, "config.json")
    try:
        spec = paths.read_json(spec_path)
    except (FileNotFoundError, ValueError):
        return set()
    return {m["destination"].strip("/") for m in spec.get("mounts", [])
            if m.get("destination", "").strip("/")}


def container_diff(container, store: Store | None = None) -> list[layer_changes.Change]:
    """``docker diff``: the changes in the container's upper dir, in Docker's order."""
    store = store or Store()
    lowers = store.layer_dirs(container.image_id)
    return layer_changes.changes_from_upperdir(container.upper_dir, lowers,
                                               exclude=engine_made_paths(container))


def paused(container, pause: bool = True):
    """Freeze a running container's processes for the time of the commit (Docker's
    ``commit --pause``, on by default): files do not change under the tar writer.
    The pause is recorded as this command's, so that if the commit is killed, the next
    command that looks at the container thaws it (:mod:`.freezer`). Where there is
    no freezer, the commit goes on unpaused."""
    return paused_by_command(container, pause)


def committed_config(parent: dict, container_config: dict, changes=(), author: str = "",
                     comment: str = "", created_by: str = "", diff_id: str = "",
                     created: str = "") -> dict:
    """The new image's config, by Docker's rules (moby ``daemon/commit.go``):

    - the runtime settings are the *container's* (the command it ran, its ``-e``
      variables, its ``-w``...) - committing ``docker run -it ubuntu bash`` gives an
      image whose CMD is ``bash``;
    - then the ``-c`` instructions are applied on top (``CMD``, ``ENV``, ``LABEL``...);
    - ``rootfs.diff_ids`` and ``history`` are the parent's plus one entry each.
    """
    config = copy.deepcopy(parent)
    runtime = {k: copy.deepcopy(container_config[k]) for k in COMMITTED_FIELDS
               if container_config.get(k) not in (None, "", [], {})}
    config["config"] = parse_changes(changes, runtime)
    config["created"] = created
    if author:
        config["author"] = author
    else:
        config.pop("author", None)
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + [diff_id]
    entry = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    config["history"] = list(config.get("history") or []) + [entry]
    return config


def commit_container(container, repository: str | None = None, message: str = "",
                     author: str = "", changes=(), pause: bool = True,
                     store: Store | None = None) -> str:
    """Make a new image from ``container``; returns its id (``sha256:...``).

    Works on running and stopped containers. ``repository`` (``name[:tag]``) tags it.
    If anything fails, the layer it stored is removed again.
    """
    store = store or Store()
    reconcile(container)                    # (a pause left by a killed commit, say)
    if repository:
        normalize_name(repository)          # a bad name fails before any work
    parse_changes(changes)                  # so does a bad -c instruction
    parent_id = container.image_id
    parent = store.image_config(parent_id)
    parent_layers = _parent_descriptors(store, parent_id, parent)
    lowers = store.layer_dirs(parent_id)
    exclude = engine_made_paths(container)
    with paused(container, pause):
        crash_point("commit-paused")
        layer = store_layer_from_upperdir(store, container.upper_dir, lowers, exclude)
    try:
        state = container.state
        command = [state.get("Path") or "", *(state.get("Args") or [])]
        config = committed_config(
            parent, state.get("Config") or {}, changes, author=author, comment=message,
            created_by=" ".join(c for c in command if c), diff_id=layer["diff_id"],
            created=clock.rfc3339(layer_changes.source_date_epoch()))
        image_id = store.write_image(config, parent_layers + [layer])
        if repository:
            store.tag(image_id, repository)
    except BaseException:
        store.discard_unreferenced([layer["digest"]], [layer["diff_id"]])
        raise
    container.emit("commit", comment=message, imageID=image_id,
                   imageRef=_familiar(repository) if repository else "")
    return image_id


def _familiar(name: str) -> str:
    from ..image.reference import familiar
    try:
        return familiar(name)
    except Exception:
        return name


def store_layer_from_upperdir(store: Store, upper: str, lowers: list[str], exclude=()) -> dict:
    """Pack ``upper`` into a layer tar and hand it to ``store.add_layer`` as it is made:
    a thread writes the tar into a pipe that the store reads, so no temporary copy of
    the layer is written and memory stays flat whatever its size.

    If either side fails, what the store may have kept of the (partial) tar is removed:
    its digest is known, since the writer hashes every byte it sends.
    """
    read_end, write_end = os.pipe()
    pipe_out = os.fdopen(write_end, "wb")
    hashing = HashingWriter(pipe_out)     # the layer's digest, known even if the store fails
    failure: list[BaseException] = []

    def produce():
        try:
            with pipe_out:
                layer_changes.layer_tar_from_upperdir(upper, hashing, lowers, exclude=exclude)
        except BrokenPipeError:
            pass                        # the store stopped reading: its error is reported
        except BaseException as e:      # noqa: BLE001 - handed to the caller below
            failure.append(e)

    writer = threading.Thread(target=produce, name="layer-tar-writer")
    writer.start()
    layer, store_error = None, None
    try:
        with os.fdopen(read_end, "rb") as pipe:   # closing it unblocks a stuck writer
            layer = store.add_layer(pipe)
    except BaseException as e:      # noqa: BLE001 - re-raised below, after the undo
        store_error = e
    writer.join()
    if failure or store_error:
        # uncompressed: the blob's digest is its diff_id
        store.discard_unreferenced([hashing.digest], [hashing.digest])
        # the writer's error says why (a truncated tar is only its consequence)
        raise failure[0] if failure else store_error
    return layer


def _parent_descriptors(store: Store, image_id: str, config: dict) -> list[dict]:
    """The parent's layers as ``add_layer`` descriptors (digest, size, mediaType and the
    diff_id from the config, in the same order)."""
    manifest = store.image_manifest(image_id)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(manifest.get("layers", [])):
        raise InvalidInput(f"image {image_id}: manifest and config disagree on its layers")
    return [{"digest": d["digest"], "size": d["size"], "mediaType": d.get("mediaType"),
             "diff_id": diff_id} for d, diff_id in zip(manifest["layers"], diff_ids)]


def export_container(container, out, store: Store | None = None) -> None:
    """``docker export``: the container's whole filesystem as one flat tar (the image's
    layers with the container's changes applied), the counterpart of ``import``.

    The merged view is made by the kernel, not by hand. A running container's overlay
    is mounted already; for a stopped one, a private, read-only overlay with the
    container's upper dir as the top-most *lower* dir (whiteouts and opaque dirs work in
    any layer) is mounted under ``$ROOT/tmp`` for as long as the tar takes.
    """
    store = store or Store()
    if container.state.get("State", {}).get("Running") and mounts.is_mountpoint(container.rootfs):
        # running: its overlay is mounted already (the container's own mounts, /proc and
        # the bind-mounted /etc files, live in its mount namespace, not here). A second
        # overlay over a live upper dir would be "undefined behaviour" (overlayfs.rst).
        layer_changes.layer_tar_from_upperdir(container.rootfs, out)
        return
    lowers = [container.upper_dir] + list(reversed(store.layer_dirs(container.image_id)))
    if len(lowers) < 2:
        # overlayfs needs two lower dirs when there is no upper dir
        lowers.append(scratch.mkdtemp(store.root, "export-empty"))
    # owned scratch: if this process is killed, a later sweep unmounts and removes it
    target = scratch.mkdtemp(store.root, "export")
    try:
        syscalls.mount("overlay", target, "overlay", syscalls.MS_RDONLY,
                       f"lowerdir={':'.join(lowers)}")
        try:
            layer_changes.layer_tar_from_upperdir(target, out)
        finally:
            mounts.umount(target)
    finally:
        os.rmdir(target)
        for extra in lowers[1:]:
            if os.path.basename(extra).startswith("export-empty-"):
                os.rmdir(extra)
