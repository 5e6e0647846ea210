"""Volumes: data that lives outside a container's layers ("Persistent storage with Volumes").

A container's writes go to its overlay upper dir, and ``rm`` deletes that. Data that
must outlive the container goes somewhere else and is *bind-mounted* in:

* a **bind mount** (``-v /host/path:/ctr/path[:ro]``, ``--mount type=bind,...``): a
  directory (or file) of the host, as is -- the slide's ``-v /home/core/mysqldata:...``;
* a **named volume** (``-v NAME:/path``, ``--mount type=volume,...``): a directory that
  minidocker manages, ``$ROOT/volumes/NAME/_data``, made on first use;
* an **anonymous volume**: a ``VOLUME /path`` in the image (or ``-v /path``) gets a
  volume with a random 64-hex name; ``rm -v`` removes it with the container;
* a **tmpfs** (``--tmpfs /run``, ``--mount type=tmpfs,...``): RAM, gone at exit;
* ``--volumes-from C``: the same mounts as container C.

*Copy-up*: when an empty volume is mounted over a directory of the image that has
files, Docker first copies those files into the volume, so ``-v data:/etc/app`` starts
with the image's config rather than an empty dir. We do the same (not for binds, and
not with ``nocopy``).

Every mount ends up as an OCI ``mounts`` entry in the bundle's config.json; the runtime
does the actual ``mount(2)`` calls. What was mounted is recorded in the container's
``Mounts`` (Docker's inspect format), which ``--volumes-from`` and ``rm -v`` read.

Layout::

    $ROOT/volumes/<name>/_data          the volume's content
    $ROOT/volumes/<name>/volume.json    its record (``volume inspect``)
"""

from __future__ import annotations

import os
import re
import shutil

from .. import clock, paths
from ..errors import Conflict, InvalidInput, NotFound
from .containers import list_containers, resolve

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
#: Docker's default options for ``--tmpfs`` (the user's are added after them)
TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]


# ----------------------------------------------------------------------- the store
def volumes_dir() -> str:
    return os.path.join(paths.data_root(), "volumes")


def volume_dir(name: str) -> str:
    return os.path.join(volumes_dir(), name)


def data_dir(name: str) -> str:
    return os.path.join(volume_dir(name), "_data")


def _record_path(name: str) -> str:
    return os.path.join(volume_dir(name), "volume.json")


def create(name: str | None = None, labels: dict | None = None, driver: str = "local",
           options: dict | None = None, anonymous: bool = False) -> dict:
    """``volume create [NAME]``: make ``$ROOT/volumes/NAME/_data``. Creating a volume that
    exists already returns it unchanged, as Docker does."""
    if driver != "local":
        raise InvalidInput(f"error looking up volume plugin {driver}: plugin \"{driver}\" not found")
    if options:
        raise InvalidInput("minidocker's local driver takes no options (-o)")
    if name is None:
        name = os.urandom(32).hex()  # as secrets.token_hex(32); that import costs ~3 ms
    elif not NAME_RE.match(name):
        raise InvalidInput(f"{name!r} includes invalid characters for a local volume name, "
                           "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to "
                           "pass a host directory, use absolute path")
    labels = dict(labels or {})
    if anonymous:
        labels[ANONYMOUS_LABEL] = ""
    with paths.locked("volumes"):
        if os.path.exists(_record_path(name)):
            return paths.read_json(_record_path(name))
        os.makedirs(data_dir(name), mode=0o755, exist_ok=True)
        record = {"CreatedAt": clock.rfc3339(), "Driver": driver, "Labels": labels,
                  "Mountpoint": data_dir(name), "Name": name, "Options": options or {},
                  "Scope": "local"}
        paths.write_json(_record_path(name), record)
    _emit(name, "create", driver=driver)
    return record


def _emit(name: str, action: str, **attributes) -> None:
    """Log a volume event as Docker does: the volume's name as the actor, its driver
    (and for ``mount`` the container, destination, mode) as attributes."""
    from .. import events
    events.emit("volume", action, name, {"driver": "local", **attributes})


def exists(name: str) -> bool:
    return os.path.exists(_record_path(name))


def inspect(name: str) -> dict:
    try:
        return paths.read_json(_record_path(name))
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"get {name}: no such volume") from None


def list_volumes() -> list[dict]:
    try:
        names = sorted(os.listdir(volumes_dir()))
    except FileNotFoundError:
        return []
    return [paths.read_json(_record_path(n)) for n in names if os.path.exists(_record_path(n))]


def is_anonymous(record: dict) -> bool:
    return ANONYMOUS_LABEL in (record.get("Labels") or {})


def users(name: str) -> list[str]:
    """Ids of the containers (running or not) that mount volume ``name``."""
    found = []
    for c in list_containers():
        if name in volume_names_of(c.state):
            found.append(c.id)
    return found


def volume_names_of(state: dict) -> set[str]:
    """The volumes a container uses: recorded Mounts, plus -v / --mount not yet mounted."""
    names = {m.get("Name") for m in state.get("Mounts") or [] if m.get("Type") == "volume"}
    names |= {spec["Source"] for spec in mount_specs(state)
              if spec["Type"] == "volume" and spec["Source"]}
    names.discard(None)
    return names


def remove(name: str, force: bool = False) -> None:
    """``volume rm``: refuse while a container uses it (even a stopped one), as Docker
    does -- also with ``-f``, which only makes a missing volume no error."""
    if force and not exists(name):
        return
    inspect(name)
    in_use = users(name)
    if in_use:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(in_use)}]")
    with paths.locked("volumes"):
        shutil.rmtree(volume_dir(name), ignore_errors=True)
    _emit(name, "destroy")


def prune(all_volumes: bool = False) -> tuple[list[str], int]:
    """``volume prune``: remove unused *anonymous* volumes (all unused ones with ``-a``),
    Docker 23's rule. Returns (names removed, bytes reclaimed)."""
    removed, reclaimed = [], 0
    for record in list_volumes():
        if not (all_volumes or is_anonymous(record)) or users(record["Name"]):
            continue
        reclaimed += _disk_usage(data_dir(record["Name"]))
        shutil.rmtree(volume_dir(record["Name"]), ignore_errors=True)
        _emit(record["Name"], "destroy")
        removed.append(record["Name"])
    return removed, reclaimed


def _disk_usage(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def remove_anonymous(state: dict) -> list[str]:
    """``rm -v``: remove the container's anonymous volumes that no other container uses
    (named volumes stay: they are meant to outlive containers)."""
    removed = []
    for m in state.get("Mounts") or []:
        name = m.get("Name")
        if m.get("Type") != "volume" or not name or not exists(name):
            continue
        if not is_anonymous(inspect(name)):
            continue
        if [u for u in users(name) if u != state.get("Id")]:
            continue
        shutil.rmtree(volume_dir(name), ignore_errors=True)
        _emit(name, "destroy")
        removed.append(name)
    return removed


# ----------------------------------------------------------------------- parsing
def _check_target(target: str, kind: str) -> str:
    if not target.startswith("/"):
        raise InvalidInput(f"invalid mount config for type \"{kind}\": invalid mount path: "
                           f"'{target}' mount path must be absolute")
    if os.path.normpath(target) == "/":
        raise InvalidInput(f"invalid mount config for type \"{kind}\": invalid specification: "
                           "destination can't be '/'")
    return os.path.normpath(target)


def parse_volume_spec(spec: str) -> dict:
    """``-v`` -> a mount description ``{Type, Source, Target, ReadOnly, NoCopy, CreateSource}``:

    ``/ctr``              an anonymous volume
    ``NAME:/ctr[:OPTS]``  a named volume
    ``/host:/ctr[:OPTS]`` a bind mount (the host dir is created if missing, like Docker)

    OPTS is a comma list of ``ro``/``rw``, ``nocopy``, and ``z``/``Z`` (SELinux relabel
    requests, accepted and ignored: there is no SELinux here).
    """
    parts = spec.split(":")
    if len(parts) == 1:
        return {"Type": "volume", "Source": "", "Target": _check_target(parts[0], "volume"),
                "ReadOnly": False, "NoCopy": False}
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidInput(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    for opt in options:
        if opt not in ("ro", "rw", "nocopy", "z", "Z", "private", "rprivate", "shared",
                       "rshared", "slave", "rslave"):
            raise InvalidInput(f"invalid mode: {opt}")
    kind = "bind" if source.startswith("/") else "volume"
    if kind == "volume" and not NAME_RE.match(source):
        raise InvalidInput(f"invalid volume specification: '{spec}': \"{source}\" includes invalid "
                           "characters for a local volume name")
    return {"Type": kind, "Source": source, "Target": _check_target(target, kind),
            "ReadOnly": "ro" in options, "NoCopy": "nocopy" in options, "CreateSource": True}


def parse_mount_spec(spec: str) -> dict:
    """``--mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,volume-nocopy]
    [,tmpfs-size=...][,tmpfs-mode=...]`` -> the same description as :func:`parse_volume_spec`."""
    fields = {}
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        fields[key.strip().lower()] = value if eq else "true"
    return normalise_mount(fields)


def normalise_mount(m: dict) -> dict:
    """A ``HostConfig.Mounts`` entry (Docker's field names, or ``--mount`` keys) -> our
    mount description."""
    low = {k.lower(): v for k, v in m.items()}
    kind = str(low.get("type") or "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidInput(f"invalid mount type: {kind}")
    target = low.get("target") or low.get("destination") or low.get("dst")
    if not target:
        raise InvalidInput("invalid mount config: target is required")
    source = low.get("source") or low.get("src") or ""
    ro = low.get("readonly", low.get("ro", False))
    readonly = ro is True or str(ro).lower() in ("true", "1")
    if kind == "bind" and not source:
        raise InvalidInput("invalid mount config for type \"bind\": field Source must not be empty")
    if kind == "tmpfs" and source:
        raise InvalidInput("invalid mount config for type \"tmpfs\": field Source must not be specified")
    if kind == "bind" and not source.startswith("/"):
        raise InvalidInput(f"invalid mount config for type \"bind\": invalid mount path: '{source}' "
                           "mount path must be absolute")
    desc = {"Type": kind, "Source": source, "Target": _check_target(target, kind),
            "ReadOnly": readonly, "NoCopy": str(low.get("volume-nocopy", "false")).lower() == "true",
            "CreateSource": False}
    if kind == "tmpfs":
        opts = []
        if low.get("tmpfs-size"):
            opts.append(f"size={low['tmpfs-size']}")
        if low.get("tmpfs-mode"):
            opts.append(f"mode={low['tmpfs-mode']}")
        desc["TmpfsOptions"] = opts
    return desc


def parse_tmpfs_spec(target: str, options: str = "") -> dict:
    """``--tmpfs /run[:OPTS]`` (``HostConfig.Tmpfs``: target -> options) -> a mount
    description; OPTS (``size=1m,mode=1777``) go to the tmpfs as they are."""
    return {"Type": "tmpfs", "Source": "", "Target": _check_target(target, "tmpfs"),
            "ReadOnly": False, "NoCopy": False, "CreateSource": False,
            "TmpfsOptions": [o for o in options.split(",") if o]}


def parse_mounts(binds=(), mounts=(), tmpfs=None) -> list[dict]:
    """A container's ``-v`` strings (``binds``), ``--mount`` descriptions (``mounts``, from
    :func:`parse_mount_spec` or :func:`normalise_mount`) and ``--tmpfs`` (``tmpfs``:
    target -> options) -> its list of mount descriptions, in that order, checked as
    Docker checks them at ``create`` (so that a typo is refused before a container
    record exists; no side effects). A target used twice is an error.

    ``create`` keeps the result in the record (``_MountSpecs``): the monitor mounts what
    was parsed then, rather than parsing the strings again (see :func:`mount_specs`)."""
    specs = [parse_volume_spec(spec) for spec in binds or ()]
    specs += [dict(m) for m in mounts or ()]
    specs += [parse_tmpfs_spec(target, options or "") for target, options in (tmpfs or {}).items()]
    targets = [spec["Target"] for spec in specs]
    for target in targets:
        if targets.count(target) > 1:
            raise InvalidInput(f"Duplicate mount point: {target}")
    return specs


def shown_mount(desc: dict) -> dict:
    """A ``--mount`` description as ``inspect`` shows it in ``HostConfig.Mounts``
    (Docker's field names)."""
    return {"Type": desc["Type"], "Source": desc["Source"], "Target": desc["Target"],
            "ReadOnly": desc["ReadOnly"]}


def mount_specs(state: dict) -> list[dict]:
    """A container's own mounts as :func:`parse_mounts` made them at ``create`` (copies:
    the caller may fill in a volume's name). A record written before minidocker kept
    them has only ``HostConfig``'s strings: they are parsed now, the same way."""
    specs = state.get("_MountSpecs")
    if specs is None:
        host_config = state.get("HostConfig") or {}
        return parse_mounts(host_config.get("Binds"),
                            [normalise_mount(m) for m in host_config.get("Mounts") or []],
                            host_config.get("Tmpfs"))
    return [dict(spec) for spec in specs]


# ----------------------------------------------------------------------- the hook
def oci_mounts(state: dict, rootfs: str) -> tuple[list[dict], list[dict]]:
    """The OCI ``mounts`` entries for a container about to start, and what they mount
    in Docker's inspect format (the record's ``Mounts``, which ``--volumes-from`` and
    ``rm -v`` read; the engine writes it into state.json, this function writes no
    record).

    Order of precedence for one destination (later wins): ``--volumes-from``, the
    image's ``VOLUME``s, ``-v``, ``--mount``, ``--tmpfs``. Volumes are created as
    needed and filled from the image (copy-up) when empty.
    """
    wanted: dict[str, dict] = {}
    for desc in _volumes_from(state):
        wanted[desc["Target"]] = desc
    previous = {m.get("Destination"): m for m in state.get("Mounts") or []}
    for target in (state.get("Config") or {}).get("Volumes") or {}:
        target = _check_target(target, "volume")
        old = previous.get(target)
        # An anonymous volume is made once, at the first start, and kept for restarts.
        name = old.get("Name", "") if old and old.get("Type") == "volume" else ""
        wanted[target] = {"Type": "volume", "Source": name, "Target": target,
                          "ReadOnly": False, "NoCopy": False}
    for desc in mount_specs(state):
        if desc["Type"] == "volume" and not desc["Source"]:
            old = previous.get(desc["Target"])
            if old and old.get("Type") == "volume":
                desc["Source"] = old.get("Name", "")
        wanted[desc["Target"]] = desc
    entries, recorded = [], []
    # Parents before children: /data must be mounted before /data/logs.
    for target in sorted(wanted, key=lambda t: t.count("/")):
        entry, record = _realise(wanted[target], rootfs)
        entries.append(entry)
        recorded.append(record)
    return entries, recorded


def log_mounts(container_id: str, recorded: list[dict]) -> None:
    """A ``mount`` event per volume the container gets at its start, as Docker logs
    them: the container, where, read/write or not."""
    for m in recorded:
        if m["Type"] == "volume":
            _emit(m["Name"], "mount", container=container_id, destination=m["Destination"],
                  propagation=m["Propagation"], **{"read/write": str(m["RW"]).lower()})


def _volumes_from(state: dict) -> list[dict]:
    """``--volumes-from C[:ro|:rw]``: every volume and bind mount of container C, at the
    same places, read-only if asked (else with C's own mode)."""
    found = []
    for spec in (state.get("HostConfig") or {}).get("VolumesFrom") or []:
        ref, _, mode = spec.partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidInput(f"invalid mode for volumes-from: {mode}")
        other = resolve(ref)
        if other.id == state.get("Id"):
            raise InvalidInput("cannot use volumes from the container itself")
        for m in other.state.get("Mounts") or []:
            if m.get("Type") not in ("volume", "bind"):
                continue
            readonly = (mode == "ro") or (not mode and not m.get("RW", True))
            source = m.get("Name") if m.get("Type") == "volume" else m.get("Source")
            found.append({"Type": m["Type"], "Source": source, "Target": m["Destination"],
                          "ReadOnly": readonly, "NoCopy": True})
    return found


def _realise(desc: dict, rootfs: str) -> tuple[dict, dict]:
    """Make what a mount needs (the volume, the host dir) and return (OCI entry, the
    container's ``Mounts`` record)."""
    kind, target, ro = desc["Type"], desc["Target"], desc["ReadOnly"]
    if kind == "tmpfs":
        options = TMPFS_DEFAULTS + (desc.get("TmpfsOptions") or []) + (["ro"] if ro else [])
        entry = {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options}
        record = {"Type": "tmpfs", "Source": "", "Destination": target, "Mode": ",".join(desc.get("TmpfsOptions") or []),
                  "RW": not ro, "Propagation": ""}
        return entry, record
    if kind == "bind":
        source = desc["Source"]
        if not os.path.exists(source):
            if not desc.get("CreateSource"):
                raise InvalidInput(f"invalid mount config for type \"bind\": bind source path "
                                   f"does not exist: {source}")
            os.makedirs(source, exist_ok=True)  # -v creates a missing host dir (Docker does)
        record = {"Type": "bind", "Source": source, "Destination": target, "Mode": "ro" if ro else "",
                  "RW": not ro, "Propagation": "rprivate"}
    else:
        name = desc["Source"]
        anonymous = not name
        if anonymous or not exists(name):
            name = create(name or None, anonymous=anonymous)["Name"]
        source = data_dir(name)
        if not desc.get("NoCopy"):
            copy_up(rootfs, target, source)
        record = {"Type": "volume", "Name": name, "Source": source, "Destination": target,
                  "Driver": "local", "Mode": "ro" if ro else "z", "RW": not ro, "Propagation": ""}
    options = ["rbind", "rprivate"] + (["ro"] if ro else [])
    return {"destination": target, "type": "bind", "source": source, "options": options}, record


def copy_up(rootfs: str, target: str, volume_data: str) -> bool:
    """Fill an *empty* volume with what the image has at ``target`` (Docker's copy-up).
    Owners, modes, times and symlinks are kept; the directory's own owner and mode too,
    so a volume over ``/var/lib/mysql`` stays writable for the ``mysql`` user."""
    # Lazy: the runtime package costs ~12 ms to import, and ps, stop and rm import
    # this module (through the monitor) without copying anything up.
    from ..runtime.rootfs_setup import path_in_root
    if not rootfs or os.listdir(volume_data):
        return False
    source = path_in_root(rootfs, target)
    if not os.path.isdir(source) or not os.listdir(source):
        return False
    for entry in os.listdir(source):
        src, dst = os.path.join(source, entry), os.path.join(volume_data, entry)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True, copy_function=_copy_keep_owner)
            _copy_owner_tree(src, dst)
        else:
            _copy_keep_owner(src, dst)
    st = os.stat(source)
    os.chown(volume_data, st.st_uid, st.st_gid)
    os.chmod(volume_data, st.st_mode & 0o7777)
    return True


def _copy_keep_owner(src: str, dst: str) -> None:
    shutil.copy2(src, dst, follow_symlinks=False)
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)


def _copy_owner_tree(src: str, dst: str) -> None:
    """copytree keeps modes but not owners of directories: set them afterwards."""
    for dirpath, dirnames, _files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        st = os.lstat(dirpath)
        os.lchown(os.path.join(dst, rel), st.st_uid, st.st_gid)
