"""Hashing content while it streams: the digest of a blob comes for free as it is read
or written, in one pass and constant memory.

Content is named by its digest (OCI image spec, ``descriptor.md``): a layer blob by the
sha256 of its bytes, a layer's *diff_id* by the sha256 of its uncompressed tar. A
:class:`HashingReader` is what the store reads a layer through while extracting it, and
what ``load`` and the registry client check a blob with (the registry's
``VerifyingReader`` adds the checks against what was announced); a
:class:`HashingWriter` is what ``commit`` writes its layer tar through.
"""

from __future__ import annotations

CHUNK = 1 << 20


def new_hasher(algorithm: str = "sha256"):
    """A hashlib object. hashlib is imported here, on first use, not at the top: it
    loads OpenSSL (~3 ms), and ``run``, which reads the store, hashes nothing."""
    import hashlib
    return hashlib.new(algorithm)


def sha256_hex(data: bytes) -> str:
    h = new_hasher()
    h.update(data)
    return h.hexdigest()


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + sha256_hex(data)


class HashingReader:
    """A file-like wrapper that hashes (and counts) everything read through it.

    ``algorithm=None`` only counts (for a reader whose bytes are hashed elsewhere)."""

    def __init__(self, raw, algorithm: str | None = "sha256"):
        self.raw = raw
        self.algorithm = algorithm
        self.hash = new_hasher(algorithm) if algorithm else None
        self.size = 0

    def read(self, n=-1):
        data = self.raw.read(n)
        if data:
            if self.hash is not None:
                self.hash.update(data)
            self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        """``<algorithm>:<hex>`` of what was read so far."""
        return f"{self.algorithm}:{self.hash.hexdigest()}"

    def drain(self) -> None:
        """Read the rest (a tar ends with zero blocks and padding that tarfile may leave
        unread; they belong to the digest all the same)."""
        while self.read(CHUNK):
            pass


class HashingWriter:
    """Passes writes on to ``f`` and hashes (and counts) them."""

    def __init__(self, f, algorithm: str = "sha256"):
        self.f = f
        self.algorithm = algorithm
        self.hash = new_hasher(algorithm)
        self.size = 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.f.write(data)

    @property
    def digest(self) -> str:
        """``<algorithm>:<hex>`` of what was written so far."""
        return f"{self.algorithm}:{self.hash.hexdigest()}"
