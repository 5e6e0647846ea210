"""The container verbs the Engine API brought to the ``minidocker`` CLI too, on the same
engine functions: restart, rename, cp, pause/unpause (the freezer cgroup), attach, stats
(the cgroup counters), top with ps options."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from helpers_engine import md  # noqa: F401  (fixture)

pytestmark = [pytest.mark.root, pytest.mark.kernel]


def _running(md, name):
    return md.out("inspect", "-f", "{{.State.Running}}", name).strip() == "true"


def test_pause_unpause_freezes_the_container(md):
    md.out("run", "-d", "--name", "counter", "busybox", "sh", "-c",
           "i=0; while true; do i=$((i+1)); echo $i > /n; sleep 0.05; done")
    try:
        time.sleep(0.5)
        md.out("pause", "counter")
        assert "(Paused)" in md.out("ps")
        assert md.out("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "counter").split() == ["paused", "true"]
        r = md("exec", "counter", "true")
        assert r.returncode != 0 and "paused" in r.stderr
        r = md("pause", "counter")
        assert r.returncode == 1 and "is already paused" in r.stderr
        # frozen: the counter does not move (read from the host, through the overlay)
        md.out("unpause", "counter")
        first = md.out("exec", "counter", "cat", "/n").strip()
        md.out("pause", "counter")
        frozen = md.out("cp", "counter:/n", "-")
        time.sleep(0.5)
        assert md.out("cp", "counter:/n", "-") == frozen
        md.out("unpause", "counter")
        time.sleep(0.3)
        assert int(md.out("exec", "counter", "cat", "/n")) > int(first)
        # rm -f of a paused container works (SIGKILL, then thaw)
        md.out("pause", "counter")
        md.out("rm", "-f", "counter")
    finally:
        md("rm", "-f", "counter")


def test_restart_and_rename(md):
    md.out("run", "-d", "--name", "svc", "busybox", "sh", "-c",
           "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done")
    try:
        pid = md.out("inspect", "-f", "{{.State.Pid}}", "svc").strip()
        assert md.out("restart", "-t", "3", "svc").strip() == "svc"
        assert _running(md, "svc")
        assert md.out("inspect", "-f", "{{.State.Pid}}", "svc").strip() != pid
        assert md.out("logs", "svc").count("started") == 2
        md.out("rename", "svc", "svc2")
        assert md.out("ps", "--format", "{{.Names}}").split() == ["svc2"]
        md.out("run", "-d", "--name", "other", "busybox", "sleep", "60")
        r = md("rename", "svc2", "other")
        assert r.returncode == 125 and 'The container name "/other" is already in use' in r.stderr
        r = md("rename", "svc2", "bad/name")
        assert r.returncode == 125 and "Invalid container name" in r.stderr
    finally:
        md("rm", "-f", "svc", "svc2", "other")


def test_cp_both_ways(md, tmp_path):
    md.out("create", "--name", "files", "busybox", "true")    # a stopped container too
    try:
        src = tmp_path / "note.txt"
        src.write_text("host data\n")
        md.out("cp", str(src), "files:/tmp/")
        md.out("cp", str(src), "files:/tmp/other-name.txt")
        d = tmp_path / "tree"
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_text("deep\n")
        md.out("cp", str(d), "files:/tmp/")
        out = tmp_path / "back"
        out.mkdir()
        md.out("cp", "files:/tmp/note.txt", str(out))
        md.out("cp", "files:/tmp/other-name.txt", str(out / "renamed.txt"))
        md.out("cp", "files:/tmp/tree", str(out / "tree-copy"))
        md.out("cp", "files:/tmp/tree/.", str(out / "contents"))
        assert (out / "note.txt").read_text() == "host data\n"
        assert (out / "renamed.txt").read_text() == "host data\n"
        assert (out / "tree-copy" / "sub" / "f").read_text() == "deep\n"
        assert (out / "contents" / "sub" / "f").read_text() == "deep\n"
        # an absolute symlink inside the container stays a link (it is not followed)
        md.out("cp", "files:/bin/sh", str(out / "sh"))
        assert os.path.exists(out / "sh")
        r = md("cp", "files:/no/such", str(out))
        assert r.returncode == 125 and "Could not find the file /no/such" in r.stderr
        r = md("cp", str(d), "files:/tmp/note.txt")
        assert r.returncode == 125 and "cannot copy a directory to a file" in r.stderr
        # the container sees the files (its image layer is untouched)
        assert md.out("run", "--rm", "busybox", "ls", "/tmp") == ""
        md.out("start", "-a", "files")
    finally:
        md("rm", "-f", "files")


def test_attach_to_a_tty_container_and_detach(md):
    md.out("run", "-d", "-it", "--name", "shell", "busybox", "sh")
    try:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "minidocker", "attach", "shell"],
                                stdin=slave, stdout=slave, stderr=slave, env=md.env,
                                start_new_session=True)
        os.close(slave)
        seen = bytearray()

        def expect(text, timeout=15):
            deadline = time.monotonic() + timeout
            while text not in seen and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    try:
                        seen.extend(os.read(master, 4096))
                    except OSError:
                        break
            assert text in seen, bytes(seen)
        time.sleep(1)
        os.write(master, b"echo attached-$((6*7))\r")
        expect(b"attached-42")
        os.write(master, b"\x10\x11")          # Ctrl-P Ctrl-Q: detach, the shell runs on
        assert proc.wait(10) == 0
        os.close(master)
        assert _running(md, "shell")
        # attach again and end the shell: attach returns its exit code
        r = subprocess.run([sys.executable, "-m", "minidocker", "attach", "shell"],
                           input="exit 6\n", capture_output=True, text=True, env=md.env,
                           timeout=20)
        assert r.returncode == 6
        r = md("attach", "shell")
        assert r.returncode == 125 and "You cannot attach to a stopped container" in r.stderr
    finally:
        md("rm", "-f", "shell")


def test_stats_reads_the_cgroup(md):
    md.out("run", "-d", "--name", "busy", "-m", "64m", "busybox", "sh", "-c",
           "x=$(head -c 8000000 /dev/zero | tr '\\0' a); while true; do :; done")
    try:
        time.sleep(1)
        lines = md.out("stats", "--no-stream", "busy").splitlines()
        assert lines[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
        fields = md.out("stats", "--no-stream", "--format",
                        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}", "busy").strip()
        name, cpu, mem, mem_perc, pids = fields.split("|")
        assert name == "busy" and float(cpu.rstrip("%")) > 20     # a busy loop
        used, limit = mem.split(" / ")
        assert limit == "64MiB" and used.endswith(("MiB", "KiB")) and float(mem_perc.rstrip("%")) > 0
        assert int(pids) >= 1
        assert md.out("top", "busy", "-o", "pid,comm").splitlines()[1].split()[1] == "sh"
    finally:
        md("rm", "-f", "busy")
