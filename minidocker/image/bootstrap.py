"""Base images without the internet: ``bootstrap busybox``, ``bootstrap debian``, ``import``.

Docker Hub's ``busybox`` and ``debian`` images are, underneath, nothing more than a root
filesystem packed in one tar (a *layer*) plus a small JSON *config* that says which
command to run (``Cmd``) and with which environment (``Env``). Like the
``lxc-create -t`` templates on the LXC slide, minidocker makes such root filesystems
locally, then stores them exactly as a pulled image would be stored:

1. fill a directory with a userland (the host's static busybox; or ``debootstrap``);
2. pack it into a layer tar, and hand the tar to the store (``Store.add_layer``),
   which keeps the blob and extracts it once into ``layers/<diff_id>``;
3. write an OCI image config (Env, Cmd, history) and record the image;
4. tag it (``busybox:latest``, ``debian:bookworm``).

``import`` does steps 2-4 with a tar the user already has (``docker import``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile

from .. import clock, scratch
from ..errors import InvalidInput, MinidockerError
from . import compression, reference
from .busybox import make_busybox_rootfs
from .store import Store, new_config

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
# Filled at run time by the container engine, never shipped in an image.
RUNTIME_DIRS = ("dev", "proc", "sys")


def _source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org): when set, timestamps are clamped to
    it, so the same rootfs gives the same layer digest and the same image id."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"invalid SOURCE_DATE_EPOCH: {value!r}") from None


def write_rootfs_tar(rootfs: str, out, empty_dirs=RUNTIME_DIRS) -> None:
    """Pack directory ``rootfs`` as a layer tar into the binary file ``out``.

    Entries are sorted (same tree -> same bytes), owners are numeric only (user names
    mean nothing inside another root filesystem), and the contents of ``dev/``,
    ``proc/``, ``sys/`` are left out: the engine mounts fresh ones in each container.
    """
    epoch = _source_date_epoch()

    def normalise(info: tarfile.TarInfo):
        info.uname = info.gname = ""
        if epoch is not None and info.mtime > epoch:
            info.mtime = epoch
        parts = info.name.split("/")
        # "./dev/null" -> skip; "./dev" itself stays.
        if len(parts) > 2 and parts[1] in empty_dirs:
            return None
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(rootfs, arcname=".", recursive=True, filter=normalise)


def image_from_rootfs(store: Store, rootfs: str, tag: str | None, cmd, created_by: str,
                      comment: str = "", env=(DEFAULT_PATH,)) -> str:
    """Steps 2-4 above for a directory: returns the new image id."""
    with store.new_blob() as blob:
        write_rootfs_tar(rootfs, blob)
    layer = store.add_layer_blob(blob.digest)
    epoch = _source_date_epoch()
    config = new_config(cmd=cmd, env=list(env), history_by=created_by, comment=comment,
                        diff_ids=[layer["diff_id"]], created=clock.rfc3339(epoch))
    image_id = store.write_image(config, [layer])
    if tag:
        store.tag(image_id, tag)
    return image_id


def _scratch_dir(store: Store, kind: str) -> str:
    return scratch.mkdtemp(store.root, kind)


def bootstrap_busybox(store: Store | None = None, tag: str = "busybox:latest") -> str:
    """``minidocker bootstrap busybox``: the host's static busybox as ``busybox:latest``."""
    store = store or Store()
    reference.parse(tag)
    scratch = _scratch_dir(store, "bootstrap-busybox")
    try:
        try:
            make_busybox_rootfs(scratch)
        except FileNotFoundError as e:
            raise MinidockerError(str(e)) from None
        return image_from_rootfs(store, scratch, tag, cmd=["sh"],
                                 created_by="bootstrap busybox")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def bootstrap_debian(store: Store | None = None, suite: str = DEBIAN_SUITE,
                     mirror: str = DEBIAN_MIRROR, tag: str | None = None,
                     log=sys.stderr) -> str:
    """``minidocker bootstrap debian``: ``debootstrap --variant=minbase`` into a scratch
    dir, then one layer tagged ``debian:<suite>``. Downloads packages from ``mirror``."""
    store = store or Store()
    tag = tag or f"debian:{suite}"
    reference.parse(tag)
    if not shutil.which("debootstrap"):
        raise MinidockerError("bootstrap debian needs debootstrap "
                              "(apt-get install debootstrap)")
    if not suite.replace("-", "").isalnum():
        raise InvalidInput(f"invalid suite name: {suite!r}")
    scratch = _scratch_dir(store, "bootstrap-debian")
    try:
        cmd = ["debootstrap", "--variant=minbase", suite, scratch, mirror]
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise MinidockerError(f"debootstrap failed (exit {result.returncode}): "
                                  f"{shlex.join(cmd)}")
        _slim_debian(scratch)
        return image_from_rootfs(store, scratch, tag, cmd=["bash"],
                                 created_by=f"bootstrap debian --suite {suite} --mirror {mirror}")
    finally:
        _umount_below(scratch)
        shutil.rmtree(scratch, ignore_errors=True)


def _slim_debian(rootfs: str) -> None:
    """What Docker's official debian image leaves out: downloaded .debs, apt lists."""
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        path = os.path.join(rootfs, d)
        if not os.path.isdir(path):
            continue
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.isfile(full) and not os.path.islink(full) and name != "lock":
                os.unlink(full)


def _umount_below(path: str) -> None:
    """debootstrap mounts /proc and /sys in the target and may leave them if it fails."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if point.startswith(real + "/"):
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)


# ============================================================================ import
def _layer_stream(src):
    """The layer bytes to store for a tar read from ``src``.

    ``docker import`` accepts gzip, bzip2, xz (and zstd) archives. gzip and zstd are
    valid OCI layer encodings and are stored as they come; bzip2 and xz are not, so
    they are decompressed on the fly (streaming, never whole in memory)."""
    kind, stream = compression.sniff(src)
    if kind in ("bzip2", "xz"):
        return compression.Decompressed(stream, kind)
    return stream


def parse_changes(changes, base: dict | None = None) -> dict:
    """Apply ``--change`` instructions (``CMD``, ``ENTRYPOINT``, ``ENV``, ``WORKDIR``,
    ``USER``, ``LABEL``, ``EXPOSE``, ``VOLUME``, ``STOPSIGNAL``) to an image config's
    ``config`` section, as ``docker import -c`` / ``docker commit -c`` do."""
    config = dict(base or {})
    for change in changes or ():
        keyword, _, rest = change.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword in ("CMD", "ENTRYPOINT"):
            config["Cmd" if keyword == "CMD" else "Entrypoint"] = _exec_form(rest)
        elif keyword == "ENV":
            env = [e for e in config.get("Env", [])]
            for key, value in _key_values(rest, keyword):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            config["Env"] = env
        elif keyword == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_key_values(rest, keyword))
            config["Labels"] = labels
        elif keyword == "WORKDIR":
            config["WorkingDir"] = rest
        elif keyword == "USER":
            config["User"] = rest
        elif keyword == "STOPSIGNAL":
            config["StopSignal"] = rest
        elif keyword == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for port in rest.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            config["ExposedPorts"] = ports
        elif keyword == "VOLUME":
            volumes = dict(config.get("Volumes") or {})
            for v in (_json_list(rest) or rest.split()):
                volumes[v] = {}
            config["Volumes"] = volumes
        else:
            raise InvalidInput(f"{keyword} is not a valid change command")
    return config


def _json_list(text: str):
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return None


def _exec_form(text: str) -> list[str]:
    """``["a","b"]`` stays as it is; anything else is run by ``/bin/sh -c`` (Docker's
    shell form)."""
    value = _json_list(text)
    return value if value is not None else ["/bin/sh", "-c", text]


def _key_values(text: str, keyword: str):
    """``K=V K2="v 2"`` or the legacy ``K V`` form."""
    words = shlex.split(text)
    if not words:
        raise InvalidInput(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = text.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{keyword} names can not be blank: {word!r}")
        pairs.append((key, value))
    return pairs


def import_tarball(src, tag: str | None, source_name: str = "-", message: str = "",
                   changes=(), store: Store | None = None) -> str:
    """``minidocker import``: a flat root filesystem tar (maybe compressed) becomes a
    one-layer image. Returns the image id."""
    store = store or Store()
    if tag:
        reference.parse(tag)
    config_section = parse_changes(changes)
    try:
        layer = store.add_layer(_layer_stream(src))
    except compression.CorruptData as e:
        raise InvalidInput(f"invalid archive: {e.detail}") from None
    created = clock.rfc3339(_source_date_epoch())
    config = new_config(diff_ids=[layer["diff_id"]], created=created,
                        comment=message or f"Imported from {source_name}")
    config["config"] = config_section
    image_id = store.write_image(config, [layer])
    if tag:
        store.tag(image_id, tag)
    store.emit(image_id, "import")
    return image_id
