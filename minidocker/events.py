"""The event stream: what happened to which container, image, network or volume.

Docker's daemon keeps a log of everything it does (``docker events`` prints it; the
Engine API serves it on ``GET /events``; docker-compose's attached ``up`` follows it to
learn when a container dies). minidocker has no daemon, so the log is a file that every
minidocker process appends to, under the data root::

    $ROOT/events.jsonl      one JSON object per line, oldest first
    $ROOT/events.jsonl.1    the previous file, once the current one grew past MAX_BYTES

Each line has Docker's event shape (moby's ``api/types/events.Message``)::

    {"Type": "container", "Action": "die",
     "Actor": {"ID": "<container id>", "Attributes": {"exitCode": "0", "image": "busybox", "name": "web"}},
     "scope": "local", "time": 1714557600, "timeNano": 1714557600123456789,
     "status": "die", "id": "<container id>", "from": "busybox"}

``status``, ``id`` and ``from`` are the fields of the Engine API before 1.22; Docker
still fills them for container and image events (``from`` only for containers), and old
clients read them.

Writers append under ``paths.locked("events")`` (a flock), so two lines never
interleave and a rotation never loses a line. The bound: when the current file is larger
than :data:`MAX_BYTES` it becomes ``events.jsonl.1`` (replacing the older one), so the
log keeps the last few thousand events and never grows without end, as Docker's daemon
keeps only its last events in memory.

Readers (:func:`read`) scan both files, keep the events between ``since`` and ``until``
that pass the filters, and with ``follow`` keep polling the file for new lines (noticing a
rotation by the file's inode changing). Standard library only: this module sits at the
bottom, beside :mod:`paths` and :mod:`clock`, so the image, network and engine layers can
all emit events.
"""

from __future__ import annotations

import json
import os
import re
import time

from . import paths
from .errors import InvalidInput, MinidockerError

#: the file, under the data root
FILE = "events.jsonl"
#: rotate when the current file is larger than this (about 3000-5000 events)
MAX_BYTES = 1 << 20
#: how often a follower looks for new lines
POLL_SECONDS = 0.1

#: the filter keys Docker's daemon accepts on /events (others: "Invalid filter 'x'")
FILTER_KEYS = ("config", "container", "daemon", "event", "image", "label", "network",
               "node", "plugin", "scope", "secret", "service", "type", "volume")

#: the event types Docker's ``type`` filter knows
TYPES = ("builder", "config", "container", "daemon", "image", "network", "node",
         "plugin", "secret", "service", "volume")


def _path(root: str | None = None) -> str:
    return os.path.join(root or paths.data_root(), FILE)


# --- writing ---------------------------------------------------------------------------

def make(type: str, action: str, actor_id: str, attributes: dict | None = None,
         time_ns: int | None = None) -> dict:
    """One event as Docker writes it (without saving it anywhere)."""
    ns = time.time_ns() if time_ns is None else time_ns
    attrs = {str(k): "" if v is None else str(v) for k, v in (attributes or {}).items()}
    event = {
        "Type": type,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": attrs},
        "scope": "local",
        "time": ns // 10**9,
        "timeNano": ns,
    }
    # The pre-1.22 fields, filled as moby's daemon/events.Log fills them.
    if type in ("container", "image"):
        event["status"] = action
        event["id"] = actor_id
        if type == "container":
            event["from"] = attrs.get("image", "")
    return event


def emit(type: str, action: str, actor_id: str, attributes: dict | None = None,
         root: str | None = None) -> None:
    """Append one event to the data root's log.

    Logging is a side effect, never the point: an event that cannot be written (a
    read-only or full disk) is dropped rather than failing the ``run`` or ``rmi`` that
    made it (nor waiting long for the log's lock)."""
    line = json.dumps(make(type, action, actor_id, attributes), separators=(",", ":")) + "\n"
    path = _path(root)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # a short bound: a stuck holder must not hold up the `run` that logs this
        with paths.locked("events", root, timeout=5):
            try:
                if os.stat(path).st_size > MAX_BYTES:
                    os.replace(path, path + ".1")
            except FileNotFoundError:
                pass
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
    except (OSError, MinidockerError):
        pass


def container_attributes(name: str, image: str, labels: dict | None = None,
                         **extra) -> dict:
    """A container event's attributes as Docker fills them: the container's labels,
    then ``image`` (as the user named it) and ``name`` (without Docker's leading /),
    then what the action adds (``exitCode``, ``signal``, ...)."""
    attrs = dict(labels or {})
    attrs["image"] = image
    attrs["name"] = name.lstrip("/")
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


# --- times -----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float | None:
    """Go's ``time.ParseDuration`` (``10m``, ``1h30m``, ``1.5s``), in seconds; None if
    ``text`` is not one."""
    text = text.strip()
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not text:
        return None
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total if pos == len(text) else None


def parse_time(value, now: float | None = None) -> float:
    """A ``--since``/``--until`` value as seconds since the epoch (see :func:`parse_time_ns`)."""
    return parse_time_ns(value, now) / 1e9


def parse_time_ns(value, now: float | None = None) -> int:
    """A ``--since``/``--until`` value as nanoseconds since the epoch, read as Docker's
    ``GetTimestamp`` reads it:

    - a Go duration (``10m``, ``1h30m``): that long before now;
    - Unix seconds, with an optional fraction (``1714557600``, ``1714557600.123456789``,
      the form Docker's client sends), to the nanosecond;
    - an RFC 3339 time or a prefix of one (``2024-05-01``, ``2024-05-01T10:00``,
      ``2024-05-01T10:00:00.5Z``, ``...+02:00``); without a zone it is local time.
    """
    if isinstance(value, (int, float)):
        return int(round(value * 10**9))
    text = str(value).strip()
    now = time.time() if now is None else now
    if not text:
        raise InvalidInput("empty time value")
    d = parse_duration(text)
    if d is not None and not re.fullmatch(r"\d+", text):
        return int(round((now - d) * 10**9))
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?", text)
    if m:
        return int(m.group(1)) * 10**9 + _fraction_ns(m.group(2))
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?)?"
                     r"(Z|z|[+-]\d{2}:\d{2})?", text)
    if not m:
        raise InvalidInput(f"failed to parse value as time or duration: {text!r}")
    day, clock_, frac, zone = m.groups()
    clock_ = clock_ or "00:00:00"
    if clock_.count(":") == 1:
        clock_ += ":00"
    try:
        tm = time.strptime(f"{day}T{clock_}", "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise InvalidInput(f"failed to parse value as time or duration: {text!r}") from None
    import calendar
    if zone is None:
        base = int(time.mktime(tm))
    else:
        base = calendar.timegm(tm)
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            base -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base * 10**9 + _fraction_ns(frac)


def _fraction_ns(digits: str | None) -> int:
    return int((digits or "").ljust(9, "0")[:9])


def format_time(time_nano: int) -> str:
    """An event's time as ``docker events`` prints it: Go's RFC3339NanoFixed
    (``2006-01-02T15:04:05.000000000Z07:00``) in local time."""
    secs, ns = divmod(int(time_nano), 10**9)
    tm = time.localtime(secs)
    offset = tm.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{ns:09d}" + zone


def format_line(event: dict) -> str:
    """One event as ``docker events`` prints it without ``--format``: the time, the
    type, the action, the actor and its attributes sorted by name::

        2024-05-01T10:00:00.123456789Z container die 3f4e... (exitCode=0, image=busybox, name=web)
    """
    out = ""
    if event.get("timeNano"):
        out = format_time(event["timeNano"]) + " "
    elif event.get("time"):
        out = format_time(int(event["time"]) * 10**9) + " "
    actor = event.get("Actor") or {}
    out += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out


# --- filters ---------------------------------------------------------------------------

def check_filters(filters: dict | None) -> dict[str, list[str]]:
    """The filters, checked: Docker's daemon refuses a key it does not know, and a
    ``type`` it does not know."""
    filters = {k: list(v) for k, v in (filters or {}).items() if v}
    for key in filters:
        if key not in FILTER_KEYS:
            raise InvalidInput(f"Invalid filter '{key}'")
    for t in filters.get("type", []):
        if t not in TYPES:
            raise InvalidInput(f"Invalid filter 'type={t}'")
    return filters


def _exact(filters, key, *values) -> bool:
    wanted = filters.get(key)
    return not wanted or any(v in wanted for v in values if v)


def _fuzzy(filters, key, *values) -> bool:
    # An ID prefix matches too: --filter container=3f4e.
    wanted = filters.get(key)
    return not wanted or any(v and (v == w or v.startswith(w)) for w in wanted for v in values)


def _strip_tag(name: str) -> str:
    # busybox:latest -> busybox; localhost:5000/x:1 -> localhost:5000/x; ids unchanged
    if "@" in name:
        return name.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash and not name.startswith("sha256:") else name


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """Does ``event`` pass ``filters`` (as moby's ``daemon/events.Filter.Include``)?

    Values of one key are alternatives (any may match); keys must all match. ``container``,
    ``network`` and ``volume`` match the actor's ID (or a prefix of it) or its name;
    ``image`` matches an image event's actor or a container event's image, with or
    without the tag; ``label`` matches ``key`` or ``key=value`` against the attributes
    (every one given must match); ``event`` matches the action (``exec_start`` also
    matches ``exec_start: sh``)."""
    if not filters:
        return True
    etype = event.get("Type", "")
    action = event.get("Action", "")
    actor = event.get("Actor") or {}
    aid = actor.get("ID", "")
    attrs = actor.get("Attributes") or {}

    wanted_events = filters.get("event")
    if wanted_events:
        if not any(action == w or (w in ("exec_create", "exec_start", "health_status")
                                   and action.startswith(w)) for w in wanted_events):
            return False
    if not _exact(filters, "type", etype):
        return False
    if not _exact(filters, "scope", event.get("scope", "local")):
        return False
    for kind in ("container", "network", "volume", "plugin"):
        if filters.get(kind):
            if etype != kind or not _fuzzy(filters, kind, aid, attrs.get("name", "")):
                return False
    if filters.get("image"):
        name = attrs.get("name" if etype == "image" else "image", "")
        if not _exact(filters, "image", aid, name, _strip_tag(aid), _strip_tag(name)):
            return False
    if filters.get("daemon") or filters.get("node") or filters.get("service") \
            or filters.get("secret") or filters.get("config"):
        return False  # no swarm, no daemon events: nothing matches
    for label in filters.get("label", []):
        key, eq, value = label.partition("=")
        if key not in attrs or (eq and attrs[key] != value):
            return False
    return True


# --- reading ---------------------------------------------------------------------------

def _lines(path: str):
    try:
        with open(path, "rb") as f:
            for raw in f:
                yield raw
    except FileNotFoundError:
        return


def _parse(raw: bytes) -> dict | None:
    # A line still being written (no newline yet) or damaged is skipped, not fatal.
    if not raw.endswith(b"\n"):
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def read(since=None, until=None, filters: dict | None = None, follow: bool = False,
         root: str | None = None, stop=None, poll: float = POLL_SECONDS):
    """Yield events, oldest first.

    As Docker's ``/events``: the log's past is read only when ``since`` or ``until`` is
    given (then the events from ``since``, or the beginning, to ``until``, both ends
    included); with ``follow`` new events are yielded as they are written, until
    ``until`` passes (forever without it) or ``stop()`` returns true. ``since`` and
    ``until`` are seconds since the epoch or strings :func:`parse_time` reads.

    A follower yields ``None`` whenever it has waited a second with nothing to say, so
    that a server streaming the events gets a chance to notice a client that went away.
    """
    filters = check_filters(filters)
    now = time.time()
    since_ns = None if since is None else parse_time_ns(since, now)
    until_ns = None if until is None else parse_time_ns(until, now)
    path = _path(root)

    def wanted(ev):
        t = ev.get("timeNano") or int(ev.get("time", 0)) * 10**9
        if since_ns is not None and t < since_ns:
            return False
        if until_ns is not None and t > until_ns:
            return False
        return matches(ev, filters)

    # Open the current file first, so that a line written while the past is read is
    # seen once: the past is everything before this file's current end.
    f = _open(path)
    st = os.fstat(f.fileno()) if f else None
    end = st.st_size if st else 0
    if since_ns is not None or until_ns is not None:
        for raw in _lines(path + ".1"):
            ev = _parse(raw)
            if ev and wanted(ev):
                yield ev
        if f:
            f.seek(0)
            consumed = 0
            while consumed < end:
                raw = f.readline()
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    f.seek(consumed)
                    break
                consumed += len(raw)
                ev = _parse(raw)
                if ev and wanted(ev):
                    yield ev
            f.seek(consumed)
    elif f:
        f.seek(end)
    if not follow:
        if f:
            f.close()
        return

    ino = st.st_ino if st else None
    pending = b""
    idle_since = time.monotonic()
    try:
        while True:
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if stop is not None and stop():
                return
            got = False
            if f:
                chunk = f.read()
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        ev = _parse(raw + b"\n")
                        if ev and wanted(ev):
                            got = True
                            yield ev
            # A rotation: the name now points at a new file. The old one is complete
            # (writers hold the lock while rotating), so switch to the new from its start.
            try:
                cur = os.stat(path).st_ino
            except FileNotFoundError:
                cur = None
            if cur is not None and cur != ino:
                if f:
                    rest = f.read()
                    for raw in (pending + rest).split(b"\n"):
                        ev = _parse(raw + b"\n") if raw else None
                        if ev and wanted(ev):
                            got = True
                            yield ev
                    f.close()
                    # Rotated twice since we last looked: the file in between is .1 now.
                    try:
                        middle = os.stat(path + ".1").st_ino
                    except FileNotFoundError:
                        middle = ino
                    if middle not in (ino, cur):
                        for raw in _lines(path + ".1"):
                            ev = _parse(raw)
                            if ev and wanted(ev):
                                got = True
                                yield ev
                pending = b""
                f = _open(path)
                ino = os.fstat(f.fileno()).st_ino if f else None
                continue
            if got:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= 1.0:
                idle_since = time.monotonic()
                yield None
            else:
                time.sleep(poll)
    finally:
        if f:
            f.close()


def _open(path: str):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
