"""The names an image archive uses, shared by :mod:`.save` (which writes them) and
:mod:`.load` (which reads them): the OCI image layout's version file, its annotations,
its blob paths, and the OCI spelling of Docker's schema2 media types.
"""

from __future__ import annotations

from .store import (MEDIA_DOCKER_LAYER, MEDIA_DOCKER_LAYER_GZIP, MEDIA_OCI_CONFIG,
                    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, split_digest)

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

#: image-spec image-layout.md: "The imageLayoutVersion value will align with the OCI
#: Image Specification version at the time changes to the layout are made".
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
#: image-spec annotations.md; ``io.containerd.image.name`` is what Docker 25+ and
#: containerd add, with the full name, so that a reader gets the repository back.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

# OCI media types for the ones Docker's schema2 uses: an OCI layout must speak OCI.
_TO_OCI_MEDIA = {MEDIA_DOCKER_LAYER: MEDIA_OCI_LAYER, MEDIA_DOCKER_LAYER_GZIP: MEDIA_OCI_LAYER_GZIP,
                 MEDIA_DOCKER_CONFIG: MEDIA_OCI_CONFIG}


def oci_media_type(media_type: str | None) -> str | None:
    """The OCI name of a schema2 media type (the same bytes); any other as it is."""
    return _TO_OCI_MEDIA.get(media_type, media_type)


def blob_path(digest: str) -> str:
    """Where a layout keeps a blob: ``blobs/sha256/<hex>`` (image-layout.md)."""
    return f"blobs/sha256/{split_digest(digest)}"
