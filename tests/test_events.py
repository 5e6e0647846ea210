"""The event log (minidocker.events) and ``minidocker events``: Docker's event shape, its
text line, since/until/filters, the bound on the file, following across a rotation; and
the events the engine, image store, network and volumes write as a user works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from minidocker import events

from helpers_engine import md  # noqa: F401  (fixture)


# ----------------------------------------------------------------------------- the log
def test_event_shape_is_dockers(data_root):
    events.emit("container", "die", "c" * 64,
                events.container_attributes("/web", "busybox", {"tier": "front"}, exitCode=0))
    events.emit("network", "create", "n" * 64, {"name": "n1", "type": "bridge"})
    with open(os.path.join(data_root, "events.jsonl")) as f:
        lines = [json.loads(l) for l in f]
    die, net = lines
    assert die["Type"] == "container" and die["Action"] == "die"
    assert die["Actor"] == {"ID": "c" * 64, "Attributes": {
        "tier": "front", "image": "busybox", "name": "web", "exitCode": "0"}}
    assert die["scope"] == "local"
    assert die["time"] == die["timeNano"] // 10**9
    # the pre-1.22 fields, for containers and images only
    assert (die["status"], die["id"], die["from"]) == ("die", "c" * 64, "busybox")
    assert "status" not in net and "from" not in net


def test_text_line_is_docker_events_output(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        ev = events.make("container", "start", "abc", {"name": "web", "image": "busybox"},
                         time_ns=1714557600_123456789)
        assert events.format_line(ev) == \
            "2024-05-01T10:00:00.123456789Z container start abc (image=busybox, name=web)"
        monkeypatch.setenv("TZ", "EST5")
        time.tzset()
        plain = events.make("image", "delete", "sha256:1", None, time_ns=1714557600_000000001)
        assert events.format_line(plain) == "2024-05-01T05:00:00.000000001-05:00 image delete sha256:1"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_parse_time_reads_docker_forms():
    now = 1_000_000.0
    assert events.parse_time("10m", now) == now - 600
    assert events.parse_time("1h30m", now) == now - 5400
    assert events.parse_time("1714557600", now) == 1714557600
    assert events.parse_time("1714557600.5", now) == 1714557600.5
    assert events.parse_time("2024-05-01T10:00:00Z", now) == 1714557600
    assert events.parse_time("2024-05-01T12:00:00+02:00", now) == 1714557600
    assert events.parse_time_ns("2024-05-01T10:00:00.25Z", now) == 1714557600_250000000
    assert events.parse_time_ns("1714557600.123456789", now) == 1714557600_123456789
    with pytest.raises(Exception, match="failed to parse"):
        events.parse_time("yesterday", now)


def _ev(type_, action, actor, attrs=None):
    return events.make(type_, action, actor, attrs)


def test_filters_follow_docker_rules():
    c = _ev("container", "start", "3f4e" + "0" * 60,
            {"name": "web", "image": "busybox:latest", "tier": "front"})
    x = _ev("container", "exec_start: sh -c true", "3f4e" + "0" * 60, {"name": "web", "image": "busybox"})
    i = _ev("image", "tag", "sha256:aa", {"name": "busybox:mine"})
    n = _ev("network", "connect", "9" * 64, {"name": "n1", "container": "x", "type": "bridge"})
    assert events.matches(c, {"container": ["web"]}) and events.matches(c, {"container": ["3f4e"]})
    assert not events.matches(i, {"container": ["web"]})
    assert events.matches(c, {"type": ["container", "image"]}) and not events.matches(n, {"type": ["image"]})
    assert events.matches(c, {"image": ["busybox"]})           # the tag is stripped
    assert events.matches(i, {"image": ["busybox"]}) and events.matches(i, {"image": ["busybox:mine"]})
    assert events.matches(c, {"label": ["tier=front"]}) and events.matches(c, {"label": ["tier"]})
    assert not events.matches(c, {"label": ["tier=back"]})
    assert events.matches(x, {"event": ["exec_start"]}) and not events.matches(c, {"event": ["die"]})
    assert events.matches(n, {"network": ["n1"]}) and not events.matches(n, {"volume": ["n1"]})
    with pytest.raises(Exception, match="Invalid filter 'colour'"):
        events.check_filters({"colour": ["red"]})


def test_since_until_and_no_past_without_them(data_root):
    for i in range(3):
        events.emit("volume", "create", f"v{i}", {"driver": "local"})
        time.sleep(0.01)
    evs = list(events.read(since=0))
    assert [e["Actor"]["ID"] for e in evs] == ["v0", "v1", "v2"]
    ns = evs[1]["timeNano"]
    middle = f"{ns // 10**9}.{ns % 10**9:09d}"      # as Docker's client sends it
    # both ends included, as Docker's daemon does
    assert [e["Actor"]["ID"] for e in events.read(since=middle, until=middle)] == ["v1"]
    assert list(events.read()) == []       # without since/until: only what comes next


def test_file_is_bounded_and_follow_survives_rotation(data_root, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 2000)
    seen = []

    def follow():
        for ev in events.read(follow=True, until=time.time() + 5):
            if ev is None:
                continue
            seen.append(ev["Actor"]["ID"])
            if len(seen) == 40:
                return
    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.3)
    for i in range(40):
        events.emit("volume", "create", f"v{i}", {"driver": "local"})
        time.sleep(0.01)
    t.join(10)
    assert seen == [f"v{i}" for i in range(40)]
    path = os.path.join(data_root, "events.jsonl")
    assert os.path.getsize(path) <= 2000 + 400 and os.path.exists(path + ".1")
    kept = [e["Actor"]["ID"] for e in events.read(since=0)]
    assert kept == [f"v{i}" for i in range(40 - len(kept), 40)] and len(kept) < 40


def test_emit_never_fails_the_caller(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "events.jsonl").mkdir()   # cannot be opened for writing
    monkeypatch.setenv("MINIDOCKER_ROOT", str(ro))
    events.emit("image", "pull", "busybox:latest", {"name": "busybox"})


# ------------------------------------------------------------------- the engine's events
def _events(md, *args):
    return md.out("events", "--since", "5m", "--until", "0s", *args, timeout=30).splitlines()


def _actions(lines, kind):
    return [l.split()[2] for l in lines if l.split()[1] == kind]


def test_a_containers_life_in_events(md):
    start = time.time()
    md("run", "--name", "ev1", "-l", "app=demo", "-v", "evvol:/data", "busybox", "sh", "-c", "exit 3")
    md("run", "-d", "--name", "ev2", "busybox", "sleep", "60", check=True)
    md("exec", "ev2", "true", check=True)
    md("kill", "-s", "TERM", "ev2", check=True)
    md("wait", "ev2")
    md("rm", "ev1", "ev2", check=True)
    md("volume", "rm", "evvol", check=True)
    lines = md.out("events", "--since", str(start), "--until", "0s").splitlines()
    ev1 = [l for l in lines if "name=ev1" in l and " container " in l]
    assert [l.split()[2] for l in ev1] == ["create", "attach", "start", "die", "destroy"]
    assert "(app=demo, exitCode=3, image=busybox, name=ev1)" in ev1[3]
    ev2 = [l.split()[2] for l in lines if "name=ev2" in l and " container " in l]
    assert ev2[:4] == ["create", "start", "exec_create:", "exec_start:"]
    assert ev2[4:] == ["exec_die", "kill", "die", "destroy"]
    assert any(" container kill " in l and "signal=15" in l for l in lines)
    vol = [l.split()[2] for l in lines if " volume " in l and " evvol " in l]
    assert vol == ["create", "mount", "destroy"]
    assert any(" network connect " in l for l in lines)
    # --filter: values of one key are alternatives, keys must all match
    only = md.out("events", "--since", str(start), "--until", "0s",
                  "--filter", "container=ev1", "--filter", "event=die", "--filter", "event=start")
    assert [l.split()[2] for l in only.splitlines()] == ["start", "die"]
    fmt = md.out("events", "--since", str(start), "--until", "0s", "--filter", "type=volume",
                 "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}")
    assert fmt.splitlines() == ["volume create evvol local", "volume mount evvol local",
                                "volume destroy evvol local"]
    as_json = md.out("events", "--since", str(start), "--until", "0s", "--filter", "type=volume",
                     "--format", "{{json .}}").splitlines()
    assert json.loads(as_json[0])["Actor"]["ID"] == "evvol"


def test_image_and_network_events(md):
    start = time.time()
    md("tag", "busybox", "evimg:1", check=True)
    md("rmi", "evimg:1", check=True)
    md("network", "create", "evnet", check=True)
    md("network", "rm", "evnet", check=True)
    lines = md.out("events", "--since", str(start), "--until", "0s").splitlines()
    img = [l for l in lines if " image " in l]
    assert [l.split()[2] for l in img] == ["tag", "untag"]
    assert img[0].endswith("(name=evimg:1)")
    net = [l.split()[2] for l in lines if " network " in l]
    assert net == ["create", "destroy"]


def test_events_follows_until_interrupted(md):
    proc = subprocess.Popen([sys.executable, "-m", "minidocker", "events", "--filter", "type=network"],
                            env=md.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        md("network", "create", "evfollow", check=True)
        md("network", "rm", "evfollow", check=True)
        got = [proc.stdout.readline(), proc.stdout.readline()]
    finally:
        proc.terminate()
        proc.wait(10)
    assert re.match(r"\S+ network create \w{64} \(name=evfollow, type=bridge\)$", got[0].strip())
    assert " network destroy " in got[1]


def test_events_bad_input(md):
    r = md("events", "--filter", "nonsense")
    assert r.returncode == 125 and "bad format of filter" in r.stderr
    r = md("events", "--filter", "colour=red", "--until", "0s")
    assert r.returncode == 125 and "Invalid filter 'colour'" in r.stderr
    r = md("events", "--since", "yesterday")
    assert r.returncode == 125 and "failed to parse" in r.stderr
