"""Removing images, with the engine's one piece of knowledge the image store lacks:
which containers use an image.

The rules (what ``rmi`` untags or deletes, when it refuses, what ``image prune``
removes) are the image layer's, in :mod:`minidocker.image.tags`; this module hands
them the containers. Both front ends call these functions: the command line prints
what they return, the Engine API would send it.
"""

from __future__ import annotations

from ..image import tags
from ..image.store import Store
from .containers import users_of

#: A container in one of these states holds its image: not even ``rmi -f`` removes it.
_ACTIVE = ("running", "paused", "restarting")


def containers_using(image_id: str) -> list[tuple[str, bool]]:
    """``(container id, running?)`` for each container made from ``image_id``."""
    return [(c.id, c.status in _ACTIVE) for c in users_of(image_id)]


def remove_image(ref: str, force: bool = False, store: Store | None = None) -> list[dict]:
    """``docker rmi [-f] REF`` (``DELETE /images/{name}``): see
    :func:`minidocker.image.tags.remove_image`."""
    return tags.remove_image(store or Store(), ref, containers_using, force)


def prune_images(all_images: bool = False, store: Store | None = None) -> dict:
    """``docker image prune [-a]`` (``POST /images/prune``): see
    :func:`minidocker.image.tags.prune_images`."""
    return tags.prune_images(store or Store(), containers_using, all_images)
