"""A container's root filesystem: the image's layers under an overlay.

The talk's "Container layers" slide: the image layers are read-only *lowerdirs*; the
container writes into its own *upperdir* (``docker diff`` lists exactly what is there).
Above the image's layers sits the container's *init* layer, ``containers/<id>/init``
(Docker's ``<id>-init``): the mount points the runtime mounts over, made once by
:func:`make_init_layer`, so that they never land in the upper dir. The files bound
over its ``/etc`` entries are :mod:`.etc_files`'.
"""

from __future__ import annotations

import errno
import os

from ..errors import MinidockerError
from ..kernel import mounts


#: What Docker's "<id>-init" layer holds (the slide's ``a65ee08f6806...-init``): the
#: mount points the runtime mounts over, so they never land in the container's own layer
#: (and so never show up in ``diff`` or get committed).
INIT_DIRS = ("dev/pts", "dev/shm", "dev/mqueue", "proc", "sys", "etc")
INIT_FILES = ("dev/console", "etc/hosts", "etc/hostname", "etc/resolv.conf")


def make_init_layer(c) -> str:
    """Create (once) the container's init layer: ``containers/<id>/init``."""
    init = os.path.join(c.dir, "init")
    if not os.path.isdir(init):
        tmp = init + ".tmp"
        for d in INIT_DIRS:
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        for f in INIT_FILES:
            open(os.path.join(tmp, f), "a").close()
        if not os.path.lexists(os.path.join(tmp, "etc/mtab")):
            os.symlink("/proc/mounts", os.path.join(tmp, "etc/mtab"))
        os.rename(tmp, init)
    return init


def mount_rootfs(c, layer_dirs: list[str]) -> None:
    """Mount the overlay for container ``c`` at ``c.rootfs``.

    ``layer_dirs`` come bottom-most first (the image's order); overlayfs wants the
    top-most lowerdir first, so the stack is: the container's init layer, then the
    image's layers from the top down; writes go to the container's upper dir.

    A ``--rm`` container's layer is deleted when it exits, so it is mounted
    ``volatile``: no syncing a layer that will not be kept (as podman does).
    """
    lowers = [make_init_layer(c), *reversed(layer_dirs)]
    volatile = bool(c.state["HostConfig"].get("AutoRemove"))
    try:
        try:
            mounts.mount_overlay(lowers, c.upper_dir, c.work_dir, c.rootfs, volatile=volatile)
        except OSError as e:
            if not (volatile and e.errno == errno.EINVAL):
                raise
            # A kernel older than 5.10 knows no "volatile": mount the ordinary way.
            mounts.mount_overlay(lowers, c.upper_dir, c.work_dir, c.rootfs)
    except OSError as e:
        raise MinidockerError(f"cannot mount the container's root filesystem: {e}") from None


def umount_rootfs(c) -> None:
    """Unmount the overlay (lazily: a process may still hold a file open)."""
    if mounts.is_mountpoint(c.rootfs):
        mounts.umount(c.rootfs, lazy=True)
