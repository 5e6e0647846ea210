"""Errors a user sees. The CLI prints ``minidocker: <message>`` and exits with ``exit_code``.

Docker's exit codes are the reference: 125 when the engine itself fails (bad flag, no
such image), 126 when the container's command cannot be invoked, 127 when it is not
found; any other code is the container's own.
"""


class MinidockerError(Exception):
    exit_code = 125


class NotFound(MinidockerError):
    """No such image, container, network or volume."""


class Conflict(MinidockerError):
    """A name already in use, an image still used by a container, ..."""


class InvalidInput(MinidockerError):
    """A malformed argument, archive, manifest or Dockerfile."""
