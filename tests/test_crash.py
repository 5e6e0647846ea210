"""Crash consistency: every command that changes the data root, killed at any moment
(SIGKILL to its whole process group, as ``kill -9`` or the OOM killer would), leaves a
store that works.

For each operation and each kill point -- chosen by time (fractions of how long the
operation takes here) and at the named steps where a crash is most dangerous (the
``MINIDOCKER_TEST_CRASH_AT`` hook, :mod:`minidocker.crashpoint`) -- the test

1. starts from a copy of a prepared data root and kills the command;
2. runs ``system check``: clean, or ``system check --repair`` brings it to clean (and a
   check after that finds nothing);
3. runs the same command again: it completes (for ``rm -f`` and ``rmi``, whose first
   run may have finished its job before it died, "No such ..." is that job done);
4. runs a container from the result, which must work;
5. leaves nothing: no container, mount, cgroup, lease or scratch file.

Plus: a container whose monitor is killed (its network, mounts and cgroup are taken
back, and it starts again).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import IS_ROOT, REPO
from helpers_registry import embedded

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root (namespaces, mounts, cgroups)")

#: kill times, as fractions of how long the operation takes when left alone
TIME_POINTS = (0.3, 0.7)

BIG = "crash/big:1"
#: the image most operations work on: busybox and a layer of incompressible bytes, so
#: that pulling, loading or committing it takes a little while
BIG_DOCKERFILE = "FROM busybox\nRUN head -c 3000000 /dev/urandom > /big && echo ok > /marker\n"


def md(root, *args, env=None, timeout=120, check=False):
    r = subprocess.run([sys.executable, "-m", "minidocker", *map(str, args)], cwd=REPO,
                       capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "MINIDOCKER_ROOT": root, **(env or {})})
    if check and r.returncode != 0:
        raise AssertionError(f"minidocker {' '.join(map(str, args))} -> {r.returncode}\n"
                             f"{r.stdout}{r.stderr}")
    return r


def killed(root, args, at=None, after=None, timeout=120) -> int:
    """Run ``minidocker ARGS`` in a process group of its own, then kill the group:
    ``at`` a named step (the command kills itself there), or ``after`` seconds."""
    env = {**os.environ, "MINIDOCKER_ROOT": root}
    if at:
        env["MINIDOCKER_TEST_CRASH_AT"] = at
    proc = subprocess.Popen([sys.executable, "-m", "minidocker", *map(str, args)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=after if after is not None else timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)    # the whole group (zstd, a helper...)
    except ProcessLookupError:
        pass
    return proc.wait()


def assert_sound(root):
    """``system check``: clean, or repaired to clean."""
    r = md(root, "system", "check")
    assert r.returncode in (0, 1), r.stderr
    if r.returncode == 1:
        assert r.stdout.strip(), "exit 1 must say what is wrong"
        fix = md(root, "system", "check", "--repair")
        assert fix.returncode == 0, f"repair did not make it clean:\n{r.stdout}\n{fix.stdout}{fix.stderr}"
        r = md(root, "system", "check")
    assert (r.returncode, r.stdout) == (0, ""), r.stdout + r.stderr
    return r


def assert_nothing_left(root):
    """No container, no mount under the root, no cgroup of its containers, no scratch."""
    ids = md(root, "ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        md(root, "rm", "-f", *ids, check=True)
    assert_sound(root)
    with open("/proc/self/mountinfo") as f:
        mounted = [line.split()[4] for line in f if line.split()[4].startswith(root + "/")]
    assert mounted == []
    tmp = os.path.join(root, "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
    for cid in ids:
        for tree in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
            assert not os.path.isdir(os.path.join(tree, "minidocker", cid))


# --------------------------------------------------------------------------- set-up
class Lab:
    """Prepared data roots to copy (``plain``: busybox; ``full``: busybox and BIG), BIG
    in a registry, saved to a file and exported as a flat rootfs tar, a build context."""

    def __init__(self, base, registry):
        self.base = base
        self.registry = registry
        self.plain = os.path.join(base, "plain")
        self.full = os.path.join(base, "full")
        os.makedirs(self.plain)
        md(self.plain, "bootstrap", "busybox", check=True)
        self.context = os.path.join(base, "context")
        os.makedirs(self.context)
        with open(os.path.join(self.context, "Dockerfile"), "w") as f:
            f.write(BIG_DOCKERFILE)
        subprocess.run(["cp", "-a", self.plain, self.full], check=True)
        md(self.full, "build", "-q", "-t", BIG, self.context, check=True)
        self.saved = os.path.join(base, "big.tar")
        md(self.full, "save", "-o", self.saved, BIG, check=True)
        cid = md(self.full, "create", BIG, check=True).stdout.strip()
        self.rootfs_tar = os.path.join(base, "rootfs.tar")
        md(self.full, "export", "-o", self.rootfs_tar, cid, check=True)
        md(self.full, "rm", cid, check=True)
        self.remote = f"{registry.host}/crash/big:1"
        md(self.full, "tag", BIG, self.remote, check=True)
        md(self.full, "push", self.remote, check=True)
        md(self.full, "rmi", self.remote, check=True)
        self.n = 0

    def copy(self, which: str) -> str:
        self.n += 1
        root = os.path.join(self.base, f"run-{self.n}")
        subprocess.run(["cp", "-a", self.plain if which == "plain" else self.full, root],
                       check=True)
        return root


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("crash"))
    with embedded(tmp_path_factory.mktemp("crash-registry")) as registry:
        try:
            yield Lab(base, registry)
        finally:
            for name in os.listdir(base):
                path = os.path.join(base, name)
                if os.path.isdir(path) and os.path.isdir(os.path.join(path, "containers")):
                    ids = md(path, "ps", "-aq", "--no-trunc").stdout.split()
                    if ids:
                        md(path, "rm", "-f", *ids)


# --------------------------------------------------------------------------- operations
class Op:
    """One store-changing command: where it starts (``before``), the command, the
    named steps worth killing it at, and how to check that its result works."""

    #: data root to copy
    start = "full"
    steps: tuple[str, ...] = ()
    #: the rerun may find the job done by the killed run ("No such ...")
    done_already = None
    #: the named steps are reached by a helper process, not the command itself
    steps_in_helper = False

    def before(self, lab, root) -> None:
        pass

    def args(self, lab, root) -> list[str]:
        raise NotImplementedError

    def verify(self, lab, root) -> None:
        raise NotImplementedError


def run_marker(root, image, path="/marker", expected="ok\n"):
    r = md(root, "run", "--rm", "--network", "none", image, "cat", path)
    assert (r.returncode, r.stdout) == (0, expected), r.stderr


class Pull(Op):
    start = "plain"
    steps = ("blob-stored", "extracted", "layer-recorded", "image-recorded")

    def args(self, lab, root):
        return ["pull", "-q", lab.remote]

    def verify(self, lab, root):
        run_marker(root, lab.remote)


class Push(Op):
    steps = ("blob-pushed", "blob-pushed@2")

    def before(self, lab, root):
        # a registry of its own for each kill: a fresh one has none of the blobs
        self.registry_cm = embedded(__import__("pathlib").Path(root + "-registry"))
        self.registry = self.registry_cm.__enter__()
        self.ref = f"{self.registry.host}/crash/pushed:1"
        md(root, "tag", BIG, self.ref, check=True)

    def args(self, lab, root):
        return ["push", self.ref]

    def verify(self, lab, root):
        try:
            other = lab.copy("plain")
            md(other, "pull", "-q", self.ref, check=True)
            run_marker(other, self.ref)
            assert_nothing_left(other)
        finally:
            self.registry_cm.__exit__(None, None, None)


class Load(Op):
    start = "plain"
    steps = ("blob-stored", "extracted", "layer-recorded", "image-recorded")

    def args(self, lab, root):
        return ["load", "-q", "-i", lab.saved]

    def verify(self, lab, root):
        run_marker(root, BIG)


class Save(Op):
    steps = ("archive-written",)

    def args(self, lab, root):
        self.out = os.path.join(root + "-out", "saved.tar")
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        return ["save", "-o", self.out, BIG]

    def verify(self, lab, root):
        # the output is whole, and a killed save's temp file was removed by the rerun
        assert os.listdir(os.path.dirname(self.out)) == ["saved.tar"]
        other = lab.copy("plain")
        md(other, "load", "-q", "-i", self.out, check=True)
        run_marker(other, BIG)
        assert_nothing_left(other)


class Import(Op):
    start = "plain"
    steps = ("blob-stored", "extracted", "image-recorded")

    def args(self, lab, root):
        return ["import", lab.rootfs_tar, "crash/imported:1"]

    def verify(self, lab, root):
        run_marker(root, "crash/imported:1")


class Commit(Op):
    steps = ("commit-paused", "extracted", "image-recorded")

    def before(self, lab, root):
        self.cid = md(root, "run", "-d", "--network", "none", BIG, "sh", "-c",
                      "head -c 2000000 /dev/urandom > /more; echo c > /committed; "
                      "sleep 1000", check=True).stdout.strip()
        for _ in range(100):
            if md(root, "exec", self.cid, "cat", "/committed").stdout == "c\n":
                break
            time.sleep(0.05)

    def args(self, lab, root):
        return ["commit", self.cid, "crash/committed:1"]

    def verify(self, lab, root):
        run_marker(root, "crash/committed:1", "/committed", "c\n")
        # the container was left running, not frozen
        state = json.loads(md(root, "inspect", self.cid, check=True).stdout)[0]["State"]
        assert state["Running"] and not state["Paused"]
        assert md(root, "exec", self.cid, "true").returncode == 0


class Build(Op):
    steps = ("container-started", "extracted", "step-committed")

    def args(self, lab, root):
        ctx = root + "-context"
        os.makedirs(ctx, exist_ok=True)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write("FROM busybox\nRUN head -c 2000000 /dev/urandom > /b\n"
                    "RUN echo built > /marker\n")
        return ["build", "-q", "-t", "crash/built:1", ctx]

    def verify(self, lab, root):
        run_marker(root, "crash/built:1", "/marker", "built\n")


class RunDetached(Op):
    steps = ("container-started",)    # the (detached) monitor is killed
    steps_in_helper = True

    def args(self, lab, root):
        return ["run", "-d", "--network", "none", BIG, "sleep", "1000"]

    def verify(self, lab, root):
        running = md(root, "ps", "-q", "--no-trunc").stdout.split()
        assert running, "the rerun's container is not running"
        r = md(root, "exec", running[0], "cat", "/marker")
        assert (r.returncode, r.stdout) == (0, "ok\n")


class RemoveForce(Op):
    steps = ("container-stopped", "discarding")
    done_already = "No such container"

    def before(self, lab, root):
        self.cid = md(root, "run", "-d", "--network", "none", BIG, "sleep", "1000",
                      check=True).stdout.strip()

    def args(self, lab, root):
        return ["rm", "-f", self.cid]

    def verify(self, lab, root):
        assert self.cid not in md(root, "ps", "-aq", "--no-trunc").stdout
        run_marker(root, BIG)


class RemoveImage(Op):
    steps = ("untagged", "discarding")
    done_already = "No such image"

    def args(self, lab, root):
        return ["rmi", BIG]

    def verify(self, lab, root):
        assert md(root, "inspect", "--type", "image", BIG).returncode != 0
        r = md(root, "run", "--rm", "--network", "none", "busybox", "echo", "hi")
        assert r.stdout == "hi\n"


class Tag(Op):
    def args(self, lab, root):
        return ["tag", BIG, "crash/tagged:1"]

    def verify(self, lab, root):
        run_marker(root, "crash/tagged:1")


OPS = {"pull": Pull, "push": Push, "load": Load, "save": Save, "import": Import,
       "commit": Commit, "build": Build, "run -d": RunDetached, "rm -f": RemoveForce,
       "rmi": RemoveImage, "tag": Tag}

_durations: dict[str, float] = {}


def duration(lab, name) -> float:
    """How long the operation takes here, left alone (measured once)."""
    if name not in _durations:
        op = OPS[name]()
        root = lab.copy(op.start)
        op.before(lab, root)
        start = time.monotonic()
        md(root, *op.args(lab, root), check=True)
        _durations[name] = time.monotonic() - start
        if isinstance(op, Push):
            op.registry_cm.__exit__(None, None, None)
        assert_nothing_left(root)
        shutil.rmtree(root)
    return _durations[name]


def kill_points():
    for name, op in OPS.items():
        for step in op.steps:
            yield pytest.param(name, step, None, id=f"{name}-at-{step}")
        for fraction in TIME_POINTS:
            yield pytest.param(name, None, fraction, id=f"{name}-after-{int(fraction * 100)}%")


@pytest.mark.parametrize("name,step,fraction", list(kill_points()))
def test_killed_command_leaves_a_working_store(lab, name, step, fraction):
    op = OPS[name]()
    after = duration(lab, name) * fraction if fraction is not None else None
    root = lab.copy(op.start)
    try:
        op.before(lab, root)
        args = op.args(lab, root)
        code = killed(root, args, at=step, after=after)
        if step is not None and not op.steps_in_helper:
            assert code == -signal.SIGKILL, f"never reached the step {step!r} (exit {code})"
        assert_sound(root)
        again = md(root, *args)
        if again.returncode != 0 and op.done_already and op.done_already in again.stderr:
            pass
        else:
            assert again.returncode == 0, f"the same command again: {again.stderr}"
        op.verify(lab, root)
        assert_nothing_left(root)
    finally:
        ids = md(root, "ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            md(root, "rm", "-f", *ids)
        shutil.rmtree(root, ignore_errors=True)


def test_container_whose_monitor_is_killed(lab):
    """The monitor of a bridged container dies (SIGKILL): the next command finds the
    container marked running with no monitor, takes back its address, veth, mounts and
    cgroup, and the container starts again."""
    root = lab.copy("full")
    try:
        cid = md(root, "run", "-d", BIG, "sleep", "1000", check=True).stdout.strip()
        lock = os.path.join(root, "containers", cid, "monitor.lock")
        from minidocker import paths
        monitors = paths.lock_holders(lock)
        assert len(monitors) == 1
        os.kill(monitors[0], signal.SIGKILL)
        for _ in range(100):
            if not paths.lock_holders(lock):
                break
            time.sleep(0.05)
        r = md(root, "system", "check")
        assert r.returncode == 1
        assert f"container {cid[:12]}: marked running, but its monitor is gone" in r.stdout
        # (its process is still alive, so its address lease still is too)
        # any command that looks at containers reconciles: ps shows it exited
        assert "Exited (255)" in md(root, "ps", "-a", check=True).stdout
        with open(os.path.join(root, "networks", "bridge", "leases.json")) as f:
            assert cid not in json.dumps(json.load(f)["leases"])
        assert_sound(root)
        assert not os.path.isdir(f"/sys/fs/cgroup/pids/minidocker/{cid}")
        assert not os.path.isdir(f"/sys/fs/cgroup/minidocker/{cid}")
        md(root, "start", cid, check=True)
        r = md(root, "exec", cid, "cat", "/marker")
        assert (r.returncode, r.stdout) == (0, "ok\n")
        assert_nothing_left(root)
    finally:
        ids = md(root, "ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            md(root, "rm", "-f", *ids)
        shutil.rmtree(root, ignore_errors=True)
