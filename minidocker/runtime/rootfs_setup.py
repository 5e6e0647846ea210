"""The container's filesystem view: mounts, /dev, pivot_root, masked and read-only paths.

Runs inside the container's new mount namespace, as its PID 1, before the command.
Each step is one named function, in the order runc's ``libcontainer/rootfs_linux.go``
takes them (:func:`prepare_rootfs` before ``pivot_root``, :func:`finalize_rootfs`
after):

1. make the whole tree private, so nothing we mount propagates back to the host;
2. bind the rootfs onto itself: ``pivot_root`` needs the new root to be a mount point;
3. the spec's mounts, under the rootfs: /proc, a tmpfs /dev, /dev/pts, /dev/shm,
   /dev/mqueue, /sys (read-only), /sys/fs/cgroup (read-only), bind mounts;
4. a minimal /dev: null, zero, full, random, urandom, tty and a few symlinks;
5. ``pivot_root(".", ".")`` and a lazy unmount of the old root: the host is gone;
6. hide (mask) what leaks host information, make kernel knobs read-only.
"""

from __future__ import annotations

import errno
import os
import stat

from ..kernel import mounts, syscalls
from ..kernel.syscalls import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID,
                               MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
                               MS_SHARED, MS_SLAVE, MS_STRICTATIME, MS_UNBINDABLE)

MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_SYNCHRONOUS = 16

#: mount(8) option words that are mount(2) flags: word -> (set?, flag).
FLAG_OPTIONS = {
    "ro": (True, MS_RDONLY), "rw": (False, MS_RDONLY),
    "nosuid": (True, MS_NOSUID), "suid": (False, MS_NOSUID),
    "nodev": (True, MS_NODEV), "dev": (False, MS_NODEV),
    "noexec": (True, MS_NOEXEC), "exec": (False, MS_NOEXEC),
    "relatime": (True, MS_RELATIME), "norelatime": (False, MS_RELATIME),
    "strictatime": (True, MS_STRICTATIME), "nostrictatime": (False, MS_STRICTATIME),
    "noatime": (True, MS_NOATIME), "atime": (False, MS_NOATIME),
    "nodiratime": (True, MS_NODIRATIME), "diratime": (False, MS_NODIRATIME),
    "sync": (True, MS_SYNCHRONOUS), "async": (False, MS_SYNCHRONOUS),
    "bind": (True, MS_BIND), "rbind": (True, MS_BIND | MS_REC),
    "defaults": (False, 0),
}

#: Propagation words: applied by a separate mount(2) call after the mount exists.
PROPAGATION_OPTIONS = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

#: The flags a read-only bind remount must repeat (the kernel resets the others).
_KEPT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME


def parse_options(options) -> tuple[int, int, str | None]:
    """Split a spec mount's ``options`` into (mount flags, propagation flags, data).

    Words like ``ro``/``nosuid`` are flags of mount(2); ``rprivate`` and friends set
    propagation (a second call); everything else (``mode=755``, ``newinstance``) is the
    filesystem's own data string.
    """
    flags, propagation, data = 0, 0, []
    for word in options or ():
        if word in FLAG_OPTIONS:
            set_it, bit = FLAG_OPTIONS[word]
            flags = flags | bit if set_it else flags & ~bit
        elif word in PROPAGATION_OPTIONS:
            propagation |= PROPAGATION_OPTIONS[word]
        else:
            data.append(word)
    return flags, propagation, ",".join(data) or None


def path_in_root(root: str, path: str) -> str:
    """``path`` inside the container as a host path under ``root``, following symlinks
    *as if* ``root`` were ``/`` (see :func:`minidocker.kernel.mounts.resolve_in_root`):
    an image may hold ``/etc -> /``, and a mount target must never land outside."""
    def readlink(rel: str) -> str | None:
        host = os.path.join(root, rel)
        return os.readlink(host) if os.path.islink(host) else None
    return os.path.join(root, mounts.resolve_in_root(path, readlink).lstrip("/"))


def _make_target(target: str, like_file: bool) -> None:
    """Create a mount point: a directory, or an empty file when a file is bound onto it."""
    if os.path.lexists(target):
        return
    if like_file:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass
    else:
        os.makedirs(target, exist_ok=True)


# --------------------------------------------------------------------------- step 1, 2
def make_root_private() -> None:
    """Step 1: ``mount --make-rprivate /``. Our new mount namespace is a copy of the
    host's, *including* its shared propagation; without this, the mounts below would
    show up on the host too."""
    mounts.make_private("/")


def bind_rootfs_onto_itself(rootfs: str) -> None:
    """Step 2: ``pivot_root`` requires the new root to be a mount point. The engine has
    mounted an overlay there already, but a plain directory must work too, so we bind
    it onto itself (recursively, keeping mounts the engine made below it)."""
    syscalls.mount(rootfs, rootfs, None, MS_BIND | MS_REC)


# --------------------------------------------------------------------------- step 3
def mount_entry(rootfs: str, entry: dict, in_cgroup_ns: bool) -> None:
    """Step 3, for one entry of the spec's ``mounts``."""
    kind = entry.get("type") or "none"
    options = entry.get("options") or []
    flags, propagation, data = parse_options(options)
    if kind == "bind" or flags & MS_BIND:
        mount_bind(rootfs, entry, flags, propagation)
    elif kind == "cgroup":
        mount_cgroup(rootfs, entry["destination"], flags, in_cgroup_ns)
    else:
        target = path_in_root(rootfs, entry["destination"])
        _make_target(target, like_file=False)
        syscalls.mount(entry.get("source") or kind, target, kind, flags, data)
        if propagation:
            syscalls.mount(None, target, None, propagation)


def mount_bind(rootfs: str, entry: dict, flags: int, propagation: int) -> None:
    """A bind mount from the host (volumes, /etc/hosts...), with
    :func:`minidocker.kernel.mounts.bind_mount` (``rbind`` makes it recursive; ``ro``,
    ``nosuid``... are applied by its remount), then the entry's propagation."""
    source = entry["source"]
    if not os.path.exists(source):
        raise OSError(errno.ENOENT, f"bind mount source {source} does not exist")
    target = path_in_root(rootfs, entry["destination"])
    _make_target(target, like_file=not os.path.isdir(source))
    mounts.bind_mount(source, target, recursive=bool(flags & MS_REC),
                      flags=flags & ~(MS_BIND | MS_REC))
    if propagation:
        syscalls.mount(None, target, None, propagation)


def host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """The host's cgroup filesystems: ``[(mount point, fstype, super options), ...]``
    from ``/proc/self/mountinfo`` (fields: ... mount point (5th) ... ``-`` fstype
    source super-options)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_options = fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2"):
                found.append((fields[4], fstype, super_options))
    return found


def mount_cgroup(rootfs: str, destination: str, flags: int, in_cgroup_ns: bool) -> None:
    """``/sys/fs/cgroup`` inside, read-only (Docker's default).

    cgroup v2 is one filesystem: mount it. cgroup v1 is a tmpfs holding one mount per
    hierarchy (``memory``, ``cpu``, ``pids``, ...), so we build the same: a tmpfs, then
    each hierarchy the host has. Inside a new *cgroup namespace* the kernel roots a
    fresh cgroup mount at the container's own group, so the container sees its group
    as ``/`` and nothing above it. Without one we bind the container's own group dirs.
    """
    target = path_in_root(rootfs, destination)
    _make_target(target, like_file=False)
    hierarchies = host_cgroup_mounts()
    if any(point == "/sys/fs/cgroup" and fstype == "cgroup2" for point, fstype, _ in hierarchies):
        if in_cgroup_ns:
            syscalls.mount("cgroup", target, "cgroup2", flags & ~MS_BIND)
        else:
            own = _own_cgroup_paths().get("", "/")
            syscalls.mount(os.path.join("/sys/fs/cgroup", own.lstrip("/")), target, None, MS_BIND)
            syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | (flags & ~MS_BIND))
        return
    base_flags = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    syscalls.mount("tmpfs", target, "tmpfs", base_flags, "mode=755")
    own = _own_cgroup_paths() if not in_cgroup_ns else {}
    for point, fstype, super_options in hierarchies:
        if not point.startswith("/sys/fs/cgroup/") or fstype == "cgroup2":
            # On a hybrid host the extra cgroup2 tree (``unified``) holds no
            # controllers; runc leaves it out, and so do we.
            continue
        name = point[len("/sys/fs/cgroup/"):]
        sub = os.path.join(target, name)
        os.makedirs(sub, exist_ok=True)
        if in_cgroup_ns:
            data = None if fstype == "cgroup2" else _cgroup_subsystems(super_options)
            syscalls.mount("cgroup", sub, fstype, flags & ~MS_BIND, data)
        else:
            key = "" if fstype == "cgroup2" else _cgroup_subsystems(super_options)
            path = own.get(key, "/")
            syscalls.mount(os.path.join(point, path.lstrip("/")), sub, None, MS_BIND)
            syscalls.mount(None, sub, None, MS_BIND | MS_REMOUNT | (flags & ~MS_BIND))
    # The tmpfs holding the hierarchies stays writable, as under runc and Docker: the
    # read-only flag is on each cgroup mount, where the limits are.


def _cgroup_subsystems(super_options: str) -> str:
    """From super options like ``rw,memory`` keep the hierarchy's identity (``memory``,
    ``cpu,cpuacct``, ``name=systemd``): a v1 mount must name exactly those."""
    keep = [o for o in super_options.split(",") if o not in ("rw", "ro") and "=" not in o
            or o.startswith("name=")]
    return ",".join(keep)


def _own_cgroup_paths() -> dict[str, str]:
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    return paths


# --------------------------------------------------------------------------- step 4
def create_device_nodes(rootfs: str, devices, bind_from_host: bool = False) -> None:
    """Step 4: the few device nodes a program expects in /dev (a fresh tmpfs).

    ``mknod`` makes a node: a name for a (type, major, minor) triple that the kernel's
    driver answers. Being able to make a node is not being able to use it: the devices
    cgroup (or eBPF filter on cgroup v2) decides what the container may open.
    """
    for device in devices:
        target = path_in_root(rootfs, device["path"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        kind = stat.S_IFBLK if device.get("type") == "b" else stat.S_IFCHR
        mode = device.get("fileMode", 0o666)
        if os.path.lexists(target):
            os.unlink(target)
        if bind_from_host and os.path.exists(device["path"]):
            bind_host_device(device["path"], target)
            continue
        try:
            os.mknod(target, kind | mode, os.makedev(device["major"], device["minor"]))
            os.chmod(target, mode)  # mknod's mode is filtered by the umask
        except PermissionError:
            # Where mknod is refused (a user namespace), bind the host's node instead.
            bind_host_device(device["path"], target)
            continue
        os.chown(target, device.get("uid", 0), device.get("gid", 0))


def bind_host_device(host_path: str, target: str) -> None:
    """Bind the host's device node onto an empty file: the container's node is then a
    mount of its own, with the host /dev's flags (device access allowed)."""
    _make_target(target, like_file=True)
    syscalls.mount(host_path, target, None, MS_BIND)


def create_dev_symlinks(rootfs: str) -> None:
    """The conventional /dev links: /dev/fd and stdin/stdout/stderr point into
    /proc/self/fd, /dev/ptmx to the container's own devpts instance."""
    links = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
    if os.path.exists("/proc/kcore"):
        links["core"] = "/proc/kcore"
    dev = path_in_root(rootfs, "/dev")
    for name, target in links.items():
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            os.symlink(target, link)


# --------------------------------------------------------------------------- step 5
def pivot_into(rootfs: str) -> None:
    """Step 5: make ``rootfs`` the root of our mount namespace and detach the host's.

    runc's idiom ``pivot_root(".", ".")``: from inside the new root, put the old root
    on top of the new one (no ``put_old`` directory needed, so even a read-only rootfs
    works), then lazily unmount it: ``..`` and ``/`` now end at the container's root,
    and no path leads back to the host's filesystem.
    """
    os.chdir(rootfs)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", MNT_DETACH)
    os.chdir("/")


# --------------------------------------------------------------------------- step 6
def mask_path(path: str) -> None:
    """Hide ``path``: bind /dev/null over a file, an empty read-only tmpfs over a dir.
    Reading /proc/kcore then gives nothing instead of the host's memory."""
    try:
        if os.path.isdir(path):
            syscalls.mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            syscalls.mount("/dev/null", path, None, MS_BIND)
    except FileNotFoundError:
        pass  # this kernel has no such file: nothing to hide
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


def readonly_path(path: str) -> None:
    """Make ``path`` read-only: bind it onto itself, then remount that bind read-only
    (keeping its nosuid/nodev/noexec). /proc/sys stays readable, but ``sysctl -w``
    fails with EROFS."""
    if not os.path.exists(path):
        return
    syscalls.mount(path, path, None, MS_BIND | MS_REC)
    kept = os.statvfs(path).f_flag & _KEPT_FLAGS
    syscalls.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)


def readonly_root() -> None:
    """``root.readonly`` (``docker run --read-only``): remount ``/`` read-only."""
    kept = os.statvfs("/").f_flag & _KEPT_FLAGS
    syscalls.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept)


# --------------------------------------------------------------------------- together
#: Annotation choosing how /dev is protected: "cgroup" (the devices cgroup, v1) or
#: "nodev" (see :func:`device_protection`). Without it the runtime picks.
DEV_MODE_ANNOTATION = "org.minidocker.dev-mode"


def device_protection(spec: dict) -> str:
    """How to keep the container away from devices other than the standard ones.

    With cgroup v1 the *devices cgroup* filters every ``open`` of a device node (the
    spec's allowlist). cgroup v2 has no such files: runc attaches an eBPF program to the
    cgroup instead, which this runtime does not do. The fallback ("nodev") gives the
    same guarantee with mount flags: the /dev tmpfs is mounted ``nodev``, so a node made
    there with ``mknod`` cannot be opened (EACCES), and the standard devices are *bind
    mounts* of the host's nodes, whose own mounts allow device access.
    """
    mode = (spec.get("annotations") or {}).get(DEV_MODE_ANNOTATION)
    if mode in ("cgroup", "nodev"):
        return mode
    return "cgroup" if os.path.isdir("/sys/fs/cgroup/devices") else "nodev"


def prepare_rootfs(spec: dict, rootfs: str, in_cgroup_ns: bool, devices) -> None:
    """Steps 1-4: everything mounted and created under ``rootfs``, still on the host's
    root."""
    make_root_private()
    bind_rootfs_onto_itself(rootfs)
    nodev_dev = device_protection(spec) == "nodev"
    for entry in spec.get("mounts", []):
        if nodev_dev and entry.get("destination") == "/dev":
            entry = dict(entry, options=list(entry.get("options") or []) + ["nodev"])
        try:
            mount_entry(rootfs, entry, in_cgroup_ns)
        except OSError as e:
            raise OSError(e.errno, f"mount {entry.get('destination')} "
                                   f"({entry.get('type')}): {e.strerror}") from None
    if os.path.isdir(path_in_root(rootfs, "/dev")):
        create_device_nodes(rootfs, devices, bind_from_host=nodev_dev)
        create_dev_symlinks(rootfs)


def finalize_rootfs(spec: dict) -> None:
    """Steps 6 and after, inside the new root: masked and read-only paths, read-only /."""
    linux = spec.get("linux", {})
    for path in linux.get("readonlyPaths", []):
        readonly_path(path)
    for path in linux.get("maskedPaths", []):
        mask_path(path)
    if spec.get("root", {}).get("readonly"):
        readonly_root()
