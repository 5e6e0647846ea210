"""``docker cp``: files in and out of a container, as tar streams.

Docker's daemon has three archive operations, and the ``docker cp`` client builds both
directions on them: *stat* a path (``HEAD .../archive``: name, size, mode, mtime, link
target), *get* a path as a tar (``GET``: a file, or a directory with everything under
it, named by its base name), and *put* a tar into a directory (``PUT``).

The paths are the container's: ``/etc/passwd`` means the container's file, symlinks
inside point into the container (an absolute link ``/data -> /srv/data`` must not
lead to the host's ``/srv``), and ``..`` cannot climb out. Rather than resolving
paths by hand, the work is done by a child process that ``chroot``s into the
container's root first: the kernel then resolves every path, link and ``..`` inside
it. A running container's root is ``/proc/PID/root`` (its mount namespace's root, so
its volumes are there too); a stopped container's overlay is mounted for the time of
the copy.

Files put into a container belong to root (``copyUIDGID`` keeps the tar's owners),
as with Docker.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat as st_mod
import tarfile
import threading

from .. import clock
from ..runtime.create import close_fds_except  # noqa: F401  (imported before any fork)
from ..errors import InvalidInput, MinidockerError, NotFound
from .containers import Container

# Go's os.FileMode bits, which Docker's stat header carries
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(mode: int) -> int:
    """A ``stat`` mode as Go's ``os.FileMode`` (type bits on top, not ``S_IFMT``)."""
    out = mode & 0o777
    if st_mod.S_ISDIR(mode):
        out |= GO_MODE_DIR
    elif st_mod.S_ISLNK(mode):
        out |= GO_MODE_SYMLINK
    elif st_mod.S_ISFIFO(mode):
        out |= GO_MODE_NAMED_PIPE
    elif st_mod.S_ISSOCK(mode):
        out |= GO_MODE_SOCKET
    elif st_mod.S_ISCHR(mode):
        out |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif st_mod.S_ISBLK(mode):
        out |= GO_MODE_DEVICE
    if mode & st_mod.S_ISUID:
        out |= GO_MODE_SETUID
    if mode & st_mod.S_ISGID:
        out |= GO_MODE_SETGID
    if mode & st_mod.S_ISVTX:
        out |= GO_MODE_STICKY
    return out


@contextlib.contextmanager
def container_root(c: Container, store):
    """The host path of the container's root as its processes see it."""
    from .lifecycle import reconcile
    from .overlay import mount_rootfs, umount_rootfs
    from ..kernel import mounts
    reconcile(c)
    pid = c.state["State"].get("Pid")
    if c.state["State"].get("Running") and pid:
        yield f"/proc/{pid}/root"
        return
    mounted = False
    if not mounts.is_mountpoint(c.rootfs):
        mount_rootfs(c, store.layer_dirs(c.image_id))
        mounted = True
    try:
        yield c.rootfs
    finally:
        if mounted:
            umount_rootfs(c)


def _in_root(root: str, fn, *args, stdin_fd: int | None = None, stdout_fd: int | None = None):
    """Run ``fn(*args)`` in a child chrooted at ``root``; its JSON-able result, or its
    error raised here again (as NotFound / InvalidInput / MinidockerError)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from ..runtime.create import close_fds_except
            close_fds_except({w, *(fd for fd in (stdin_fd, stdout_fd) if fd is not None)})
            os.chroot(root)
            os.chdir("/")
            result = {"ok": fn(*args, stdin_fd=stdin_fd, stdout_fd=stdout_fd)}
        except NotFound as e:
            result = {"notfound": str(e)}
        except (InvalidInput, tarfile.TarError, ValueError) as e:
            result = {"invalid": str(e)}
        except BaseException as e:   # noqa: BLE001 - reported to the parent
            result = {"error": f"{type(e).__name__}: {e}"}
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(code)
    os.close(w)
    for fd in (stdin_fd, stdout_fd):
        if fd is not None:
            os.close(fd)            # the child has them
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"error": "the copy process died"}')
    if "notfound" in result:
        raise NotFound(result["notfound"])
    if "invalid" in result:
        raise InvalidInput(result["invalid"])
    if "error" in result:
        raise MinidockerError(result["error"])
    return result["ok"]


def _normalise(path: str) -> str:
    if not path.startswith("/"):
        path = "/" + path
    return path


# ---------------------------------------------------------------- in the chroot
def _stat_here(path: str, container_id: str, **_fds) -> dict:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {container_id}") from None
    except NotADirectoryError:
        raise NotFound(f"Could not find the file {path} in container {container_id}") from None
    link = ""
    if st_mod.S_ISLNK(st.st_mode):
        link = os.path.realpath(path)
    name = os.path.basename(path.rstrip("/")) or "/"
    return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": clock.rfc3339(int(st.st_mtime)) if st.st_mtime > 0 else "0001-01-01T00:00:00Z",
            "linkTarget": link}


def _tar_here(path: str, container_id: str, stdin_fd=None, stdout_fd=None) -> bool:
    """Write a tar of ``path`` to ``stdout_fd``, entries named by its base name (or
    ``.`` for ``DIR/.``: the directory's contents)."""
    follow = path.endswith("/") and not path.endswith("/.")
    target = path.rstrip("/") if path not in ("/",) else "/"
    if path.endswith("/."):
        target = path[:-2] or "/"
    if not os.path.lexists(target):
        raise NotFound(f"Could not find the file {path} in container {container_id}")
    if follow:
        target = os.path.realpath(target)
    if path.endswith("/.") or target == "/":
        arcname = "."
    else:
        arcname = os.path.basename(target)
    with os.fdopen(stdout_fd, "wb") as out:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(target, arcname=arcname, recursive=True)
    return True


def _untar_here(path: str, container_id: str, no_overwrite_dir_non_dir: bool,
                copy_uid_gid: bool, stdin_fd=None, stdout_fd=None) -> bool:
    """Extract the tar on ``stdin_fd`` into directory ``path``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {container_id}") from None
    if not st_mod.S_ISDIR(st.st_mode):
        raise InvalidInput("extraction point is not a directory")
    with os.fdopen(stdin_fd, "rb") as f:
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for member in tar:
                dest = os.path.join(path, member.name)
                if no_overwrite_dir_non_dir and os.path.lexists(dest):
                    existing_dir = os.path.isdir(dest) and not os.path.islink(dest)
                    if existing_dir and not member.isdir():
                        raise InvalidInput(f"cannot overwrite directory \"{dest}\" with "
                                           f"non-directory \"{member.name}\"")
                    if not existing_dir and member.isdir():
                        raise InvalidInput(f"cannot overwrite non-directory \"{dest}\" with "
                                           f"directory \"{member.name}\"")
                if not copy_uid_gid:
                    member.uid = member.gid = 0
                    member.uname = member.gname = ""
                tar.extract(member, path, numeric_owner=True, filter="fully_trusted")
    return True


# ---------------------------------------------------------------- the engine's verbs
def stat_path(c: Container, path: str, store) -> dict:
    """What ``HEAD /containers/{id}/archive?path=`` tells (``X-Docker-Container-Path-Stat``)."""
    path = _normalise(path)
    with container_root(c, store) as root:
        return _in_root(root, _stat_here, path, c.id)


def archive_out(c: Container, path: str, store):
    """Yield a tar of ``path`` in the container, in chunks (``GET .../archive``). The
    path is checked first, so that a missing one is an error before any byte goes."""
    path = _normalise(path)
    stack = contextlib.ExitStack()
    root = stack.enter_context(container_root(c, store))
    try:
        _in_root(root, _stat_here, path.rstrip("/.") or "/" if path.endswith("/.") else path, c.id)
    except BaseException:
        stack.close()
        raise
    r, w = os.pipe2(os.O_CLOEXEC)
    result: dict = {}

    def produce():
        try:
            _in_root(root, _tar_here, path, c.id, stdout_fd=w)
        except BaseException as e:   # noqa: BLE001
            result["error"] = e

    def chunks():
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            with os.fdopen(r, "rb") as f:
                while True:
                    data = f.read(65536)
                    if not data:
                        break
                    yield data
            thread.join()
            if "error" in result:
                raise result["error"]
        finally:
            thread.join(timeout=30)
            stack.close()
    return chunks()


def archive_in(c: Container, path: str, reader, store, no_overwrite_dir_non_dir=False,
               copy_uid_gid=False) -> None:
    """Extract the tar read from ``reader`` into directory ``path`` of the container
    (``PUT .../archive``)."""
    path = _normalise(path)
    with container_root(c, store) as root:
        r, w = os.pipe2(os.O_CLOEXEC)
        error: dict = {}

        def feed():
            try:
                with os.fdopen(w, "wb") as out:
                    while True:
                        data = reader.read(65536)
                        if not data:
                            break
                        out.write(data)
            except BrokenPipeError:
                pass          # the extractor stopped (bad tar, bad path): it says why
            except BaseException as e:   # noqa: BLE001
                error["e"] = e
        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        try:
            _in_root(root, _untar_here, path, c.id, no_overwrite_dir_non_dir, copy_uid_gid,
                     stdin_fd=r)
        finally:
            thread.join(timeout=60)
        if "e" in error:
            raise error["e"]


def copy_out(c: Container, path: str, store, out) -> None:
    """Write the tar of ``path`` to the binary file ``out``."""
    for chunk in archive_out(c, path, store):
        out.write(chunk)


def read_tar_bytes(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
