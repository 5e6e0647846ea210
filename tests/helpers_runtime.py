"""Helpers for the runtime tests: OCI bundles around the shared busybox rootfs.

A bundle's rootfs is an overlay whose lower layer is the session's busybox rootfs, so
whatever a container writes lands in the test's own upper dir and the shared rootfs
stays untouched (as an image layer does under Docker).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid

from minidocker import runtime
from minidocker.kernel import mounts
from minidocker.runtime import spec as runtime_spec


def new_id() -> str:
    """A fresh 64-hex container id, so that parallel or repeated tests never share a
    cgroup."""
    return uuid.uuid4().hex + uuid.uuid4().hex


@contextlib.contextmanager
def overlay_bundle(lower: str, directory: str):
    """``directory`` as an OCI bundle dir whose ``rootfs`` is an overlay over ``lower``;
    unmounted again at the end."""
    rootfs = os.path.join(directory, "rootfs")
    upper, work = os.path.join(directory, "upper"), os.path.join(directory, "work")
    for d in (rootfs, upper, work):
        os.makedirs(d, exist_ok=True)
    mounts.mount_overlay([lower], upper, work, rootfs)
    try:
        yield directory
    finally:
        mounts.umount(rootfs, lazy=True)


def write_bundle_spec(bundle: str, args, cid: str, **kwargs) -> dict:
    """Write Docker's default config.json (plus ``kwargs``) into ``bundle``.

    The cgroup path is absolute (``/minidocker/<id>``): runc reads a relative one as
    relative to its own cgroup, which belongs to the machine.
    """
    kwargs.setdefault("hostname", cid[:12])
    kwargs.setdefault("cgroups_path", f"/minidocker/{cid}")
    spec = runtime_spec.default_spec(list(args), **kwargs)
    runtime_spec.write_spec(bundle, spec)
    return spec


class Result:
    def __init__(self, code, out, err, proc):
        self.code, self.out, self.err, self.proc = code, out, err, proc

    def __repr__(self):
        return f"<Result code={self.code} out={self.out!r} err={self.err!r}>"


def run_bundle(bundle: str, cid: str, stdin: int | None = None, after_create=None) -> Result:
    """create + start + wait, with stdout/stderr captured in temporary files."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            open(os.devnull, "rb") as null:
        proc = runtime.create(bundle, cid, stdin=null.fileno() if stdin is None else stdin,
                              stdout=out.fileno(), stderr=err.fileno())
        try:
            if after_create:
                after_create(proc)
            runtime.start(proc)
            code = proc.wait()
        finally:
            proc.cleanup()
        out.seek(0)
        err.seek(0)
        return Result(code, out.read().decode(), err.read().decode(), proc)


def run_in(lower: str, tmp_dir: str, args, **kwargs) -> Result:
    """Run ``args`` in a fresh container over ``lower``; return what it printed."""
    cid = new_id()
    with overlay_bundle(lower, tmp_dir) as bundle:
        write_bundle_spec(bundle, args, cid, **kwargs)
        return run_bundle(bundle, cid)


def sh(lower: str, tmp_dir: str, script: str, **kwargs) -> Result:
    return run_in(lower, tmp_dir, ["sh", "-c", script], **kwargs)


def read_until_eio(fd: int, idle_timeout: float | None = None) -> bytes:
    """Everything written to a pty's slave end, read from the master ``fd`` until every
    slave end is closed (the read fails with EIO), or nothing came for ``idle_timeout``
    seconds (a test that went wrong must not hang)."""
    import select
    chunks = []
    while True:
        if idle_timeout is not None and not select.select([fd], [], [], idle_timeout)[0]:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)
