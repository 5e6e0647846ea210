"""Digests: the names of content in a registry.

A digest is ``<algorithm>:<hex>``, e.g. ``sha256:9b2a...`` (OCI image spec,
"descriptor.md#digests"). Everything a registry stores is named by the digest of its
bytes, so a client can check what it received and a registry can check what it was
sent: neither has to trust the other or the network.

Both sides verify *while the bytes stream by* (never reading a whole layer into
memory): :class:`VerifyingReader` wraps a stream, hashes and counts what passes
through, and raises at the end if the digest or the size is wrong.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import InvalidInput
from ..image.hashing import HashingReader

#: algorithms the OCI spec registers; sha256 is what everyone uses
ALGORITHMS = {"sha256": 64, "sha512": 128}
DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


class DigestMismatch(InvalidInput):
    """Content does not match the digest (or size) it was announced with."""


def parse_digest(digest: str) -> tuple[str, str]:
    """Split ``sha256:<hex>`` into ``("sha256", "<hex>")``; InvalidInput if malformed.

    The spec's grammar allows other algorithms; we accept the registered ones, with
    the exact hex length, so that a digest can be used safely as a file name."""
    m = DIGEST_RE.match(digest or "")
    if not m or m.group(1) not in ALGORITHMS:
        raise InvalidInput(f"invalid digest: {digest!r}")
    algo, hexpart = m.groups()
    if len(hexpart) != ALGORITHMS[algo] or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise InvalidInput(f"invalid digest: {digest!r}")
    return algo, hexpart


def is_digest(text: str) -> bool:
    try:
        parse_digest(text)
        return True
    except InvalidInput:
        return False


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class VerifyingReader(HashingReader):
    """A :class:`~minidocker.image.hashing.HashingReader` that checks what it read
    against what was announced: the digest and, if given, the size.

    At the end of the stream (the read that returns nothing) it raises
    :class:`DigestMismatch` if the content is not what ``expected_digest`` (and
    ``expected_size``) promised; :meth:`verify` does the same check on demand. Reading
    past ``expected_size`` raises at once, so a lying server cannot make us store more
    than the manifest announced. With ``check_digest=False`` only the size is checked:
    for a stream whose reader hashes it anyway (``store.add_layer(..., expected=)``),
    a second pass over every byte would be wasted.
    """

    def __init__(self, stream, expected_digest: str, expected_size: int | None = None,
                 what: str = "blob", check_digest: bool = True):
        algorithm = parse_digest(expected_digest)[0]
        super().__init__(stream, algorithm if check_digest else None)
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.what = what

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatch(f"{self.what} {self.expected_digest}: more data than "
                                 f"the announced {self.expected_size} bytes")
        if not data and n != 0:
            self.verify()
        return data

    def verify(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(f"{self.what} {self.expected_digest}: got {self.size} bytes, "
                                 f"expected {self.expected_size} (truncated?)")
        if self.hash is not None and self.digest != self.expected_digest:
            raise DigestMismatch(f"{self.what} {self.expected_digest}: content does not match "
                                 f"its digest (got {self.digest})")
