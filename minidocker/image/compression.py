"""Compressed streams: which compression a stream uses, and its bytes uncompressed.

A layer blob may be a plain tar or a gzip- or zstd-compressed one (OCI image spec,
``layer.md``); ``docker load`` and ``docker import`` also take bzip2 and xz. Whatever
a media type or a file name says, the first bytes tell (each format starts with its own
*magic number*), so that is what is trusted. Everything streams: a layer of any size
is decompressed in constant memory, never read whole.

Used by the store (a layer blob, to extract it), :mod:`.load` (a compressed archive, a
layer to hash) and :mod:`.bootstrap` (``import`` of a bzip2 or xz tar).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
import threading
import zlib

from ..errors import InvalidInput, MinidockerError

CHUNK = 1 << 20

# Magic numbers at the start of a compressed stream.
_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
}

#: How many bytes :func:`detect_compression` needs to see.
HEAD_SIZE = 8


def detect_compression(head: bytes) -> str | None:
    """Which compression a stream uses, from its first bytes (None = not compressed)."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def read_head(src, n: int = HEAD_SIZE) -> bytes:
    """The first ``n`` bytes of ``src`` (fewer only at its end: a pipe may return less
    than asked for at a time)."""
    head = b""
    while len(head) < n:
        chunk = src.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


def sniff(src) -> tuple[str | None, "Peeked"]:
    """Read the first bytes of ``src`` to tell its compression; returns it, and a
    stream that gives those bytes again and then the rest of ``src`` (a pipe cannot be
    rewound)."""
    head = read_head(src)
    return detect_compression(head), Peeked(head, src)


class Peeked(io.RawIOBase):
    """A reader that replays a few already-read bytes before the rest of ``raw``.
    Closing it leaves ``raw`` open: it belongs to the caller."""

    def __init__(self, head: bytes, raw):
        super().__init__()
        self.head, self.raw = head, raw

    def read(self, n=-1):
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            if len(data) < n:
                data += self.raw.read(n - len(data))
            return data
        return self.raw.read(n)

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readable(self):
        return True


class CorruptData(InvalidInput):
    """The compressed stream is damaged or cut short. ``kind`` is the compression,
    ``detail`` what the decompressor said; each caller names the blob or file."""

    def __init__(self, kind: str, detail):
        self.kind, self.detail = kind, str(detail)
        super().__init__(f"corrupt {kind} data ({self.detail})")


class Decompressed(io.RawIOBase):
    """The uncompressed bytes of ``src`` (a binary stream compressed with ``kind``), as
    a readable stream. A damaged stream raises :class:`CorruptData` from ``read``.

    gzip, bzip2 and xz are in Python's standard library. zstd is not (before 3.14): the
    ``zstd`` program decompresses. It reads a regular file itself; anything else (a
    pipe, a member of a tar) is fed to it by a thread, so that neither pipe fills up
    while the other waits.
    """

    def __init__(self, src, kind: str):
        super().__init__()
        self.kind = kind
        self.proc = None
        self.feeder = None
        self.failure: list[BaseException] = []
        self.finished = False
        if kind == "zstd":
            self.stream = self._start_zstd(src)
        else:
            opener = {"gzip": lambda s: gzip.GzipFile(fileobj=s, mode="rb"),
                      "bzip2": lambda s: bz2.BZ2File(s, mode="rb"),
                      "xz": lambda s: lzma.LZMAFile(s, mode="rb")}[kind]
            self.stream = opener(src)

    def _start_zstd(self, src):
        if not shutil.which("zstd"):
            raise MinidockerError("zstd-compressed data needs the 'zstd' program "
                                  "(apt-get install zstd)")
        fd = _regular_file_fd(src)
        if fd is not None:
            self.proc = subprocess.Popen(["zstd", "-dcq"], stdin=fd, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
            return self.proc.stdout
        self.proc = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

        def feed():
            try:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    self.proc.stdin.write(chunk)
            except BrokenPipeError:
                pass
            except BaseException as e:      # a truncated archive: reported by the reader
                self.failure.append(e)
            finally:
                try:
                    self.proc.stdin.close()
                except BrokenPipeError:
                    pass

        self.feeder = threading.Thread(target=feed, name="zstd-feeder", daemon=True)
        self.feeder.start()
        return self.proc.stdout

    def readable(self):
        return True

    def read(self, n=-1):
        try:
            data = self.stream.read(n if n is not None and n >= 0 else -1)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise           # a real I/O error, not bad data
            raise CorruptData(self.kind, e) from None
        if not data and n != 0 and self.proc is not None and not self.finished:
            self._finish_zstd()
        return data

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def _finish_zstd(self):
        """At the end of zstd's output: did it get all its input, and like it?"""
        self.finished = True
        code = self.proc.wait()
        if self.feeder is not None:
            self.feeder.join()
        if self.failure:
            raise self.failure[0]
        if code != 0:
            raise CorruptData("zstd", f"zstd exited with status {code}")

    def close(self):
        if self.closed:
            return
        try:
            self.stream.close()
            if self.proc is not None:
                if not self.finished:      # the reader gave up early: stop zstd
                    self.proc.kill()
                self.proc.wait()
                if self.feeder is not None:
                    self.feeder.join()
        finally:
            super().close()


def _regular_file_fd(src) -> int | None:
    """The descriptor of ``src`` when it is a regular file read from its current
    position (zstd can then read it directly), else None."""
    if not isinstance(src, (io.BufferedReader, io.FileIO)):
        return None
    try:
        fd = src.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        os.lseek(fd, src.tell(), os.SEEK_SET)   # the buffer may have read ahead
    except (OSError, ValueError):
        return None
    return fd


def uncompressed(src):
    """``src`` (a binary stream), uncompressed if it is compressed: returns
    ``(compression or None, a readable stream of the uncompressed bytes)``. Close the
    stream when done (it may be a ``zstd`` process); ``src`` stays open."""
    kind, stream = sniff(src)
    if kind is None:
        return None, stream
    if isinstance(src, (io.BufferedReader, io.FileIO)) and src.seekable():
        # a file: rewind it rather than replay the head, so that zstd can read it itself
        src.seek(-len(stream.head), os.SEEK_CUR)
        stream = src
    return kind, Decompressed(stream, kind)
