"""The step cache: "have I built exactly this step on exactly this parent before?"

Docker's rule (``docker build`` docs, "Leverage build cache"): a step can reuse an
earlier result when

- its *parent image* is the same (so everything before it was the same),
- its *instruction* is the same after variable expansion (``ENV X=$Y`` with another Y
  is another step; for RUN the build args in scope count too),
- and for COPY/ADD, the *contents and metadata* of the copied files are the same
  (a checksum over path, mode, link target and bytes -- not the modification time).

So a cache key is a digest of those three. The cache itself is a directory of small
files ``$ROOT/buildcache/<key hex>`` whose content is the image id the step produced;
an entry whose image has since been removed is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

from .. import paths


def step_key(parent: str, instruction: str, sources_digest: str = "") -> str:
    """The cache key of one step (hex sha256 over its three ingredients)."""
    blob = json.dumps([parent, instruction, sources_digest], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class StepCache:
    def __init__(self, root: str | None = None):
        self.dir = os.path.join(root or paths.data_root(), "buildcache")

    def lookup(self, key: str, store) -> str | None:
        try:
            with open(os.path.join(self.dir, key)) as f:
                image_id = f.read().strip()
        except FileNotFoundError:
            return None
        return image_id if image_id and store.has_image(image_id) else None

    def record(self, key: str, image_id: str) -> None:
        paths.write_atomic(os.path.join(self.dir, key), image_id + "\n")

    def clear(self) -> list[str]:
        """Forget every step (``docker builder prune``): the next build runs them all
        again. The images stay; untagged ones go with ``image prune``. Returns the
        keys removed."""
        removed = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return removed
        for name in names:
            try:
                os.unlink(os.path.join(self.dir, name))
                removed.append(name)
            except FileNotFoundError:
                pass
        return removed


class SourcesDigest:
    """Checksum of what a COPY/ADD will copy: each file's path (relative to its source),
    type, permission bits, link target and content. Modification times are left out on
    purpose: a ``git checkout`` or a ``touch`` must not invalidate the cache (Docker's rule)."""

    def __init__(self):
        self.hash = hashlib.sha256()

    def add(self, rel: str, host_path: str, st: os.stat_result | None = None) -> None:
        st = st or os.lstat(host_path)
        self.hash.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            self.hash.update(os.readlink(host_path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with open(host_path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    self.hash.update(chunk)
        self.hash.update(b"\n")

    def add_text(self, text: str) -> None:
        self.hash.update(text.encode() + b"\n")

    def hexdigest(self) -> str:
        return self.hash.hexdigest()
