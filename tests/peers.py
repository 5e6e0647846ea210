"""The peer tools (podman, skopeo), run the way this machine needs them (MACHINE.md):
the one place the tests and the benchmarks learn how.

- :class:`Podman`: podman with everything private to one user - root, runroot, tmpdir
  and a ``containers.conf`` (:data:`PODMAN_CONF`: the ulimits under this machine's hard
  rlimits, runc since crun refuses the hybrid cgroup layout, cgroupfs, file events) in
  one short directory under /tmp (podman refuses a runroot longer than 50 characters);
  vfs storage (no overlay mounts to leak) or overlay (podman's default, what a user
  gets); :meth:`Podman.cleanup` removes containers and images, resets the store,
  unmounts whatever is left under the directory and removes it.
- :func:`skopeo` / :data:`SKOPEO`: skopeo with ``--insecure-policy``.
- :func:`need`: skip a test, with the reason, when a tool is not installed.

The tests import this module directly (conftest puts ``tests/`` on ``sys.path``); the
benchmarks through ``benchmarks/common.py``. Nothing here needs pytest until a test
asks to skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

#: podman's settings on this machine (MACHINE.md): without the ulimits every run fails
#: with ``setrlimit RLIMIT_NOFILE: Operation not permitted``
PODMAN_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

#: podman refuses a run root longer than this
RUNROOT_MAX = 50

#: skopeo's argv prefix (no policy.json needed)
SKOPEO = ["skopeo", "--insecure-policy"]


def need(*tools: str) -> None:
    """Skip the calling test when one of ``tools`` is not on PATH."""
    for tool in tools:
        if not shutil.which(tool):
            import pytest
            pytest.skip(f"{tool} is not installed (apt-get install {tool})")


def _failed(cmd, r) -> AssertionError:
    out = r.stdout.decode(errors="replace") if isinstance(r.stdout, bytes) else r.stdout
    err = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else r.stderr
    return AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{out or ''}{err or ''}")


class Podman:
    """podman with a private store, runroot, tmpdir and containers.conf, all under
    ``base`` (a fresh directory under /tmp, removed by :meth:`cleanup`).

    ``storage``: ``"vfs"`` (tests: plain directories, nothing mounted) or ``"overlay"``
    (benchmarks: podman's default driver, as users run it).

    Use :meth:`cmd` for an argv with :attr:`env` (benchmarks time their own
    subprocesses), or call the object (``podman("run", ...)``) to run and check.
    """

    def __init__(self, storage: str = "vfs", prefix: str = "mdpod-"):
        self.storage = storage
        self.base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        runroot = os.path.join(self.base, "run")
        if len(runroot) > RUNROOT_MAX:
            shutil.rmtree(self.base, ignore_errors=True)
            raise ValueError(f"podman runroot {runroot} is longer than {RUNROOT_MAX} characters")
        self.conf = os.path.join(self.base, "containers.conf")
        with open(self.conf, "w") as f:
            f.write(PODMAN_CONF)
        self.argv = ["podman", "--root", os.path.join(self.base, "root"), "--runroot", runroot,
                     "--tmpdir", os.path.join(self.base, "tmp"), "--storage-driver", storage]

    @classmethod
    def or_skip(cls, *args, **kw) -> "Podman":
        """For tests: skip when podman or runc (its runtime here) is not installed."""
        need("podman", "runc")
        return cls(*args, **kw)

    @property
    def env(self) -> dict:
        """The caller's environment with this podman's containers.conf."""
        return dict(os.environ, CONTAINERS_CONF=self.conf)

    def cmd(self, *args) -> list[str]:
        """The argv of ``podman ARGS`` on this private store (run it with :attr:`env`)."""
        return self.argv + [str(a) for a in args]

    def run(self, *args, check=True, timeout=120, input=None, text=None):
        """Run ``podman ARGS``; returns the CompletedProcess (text unless ``input`` is
        bytes or ``text=False``). With ``check``, a failure raises AssertionError with
        podman's output."""
        if text is None:
            text = not isinstance(input, bytes)
        cmd = self.cmd(*args)
        r = subprocess.run(cmd, capture_output=True, env=self.env, timeout=timeout,
                           input=input, text=text)
        if check and r.returncode != 0:
            raise _failed(cmd, r)
        return r

    def __call__(self, *args, **kw):
        return self.run(*args, **kw)

    def import_rootfs(self, rootfs: str, name: str, changes=()) -> None:
        """MACHINE.md's recipe: ``tar -C rootfs -c . | podman import [--change C]... - NAME``."""
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                             check=True).stdout
        flags = [x for change in changes for x in ("--change", change)]
        self.run("import", *flags, "-", name, input=tar)

    def cleanup(self) -> None:
        """Remove every container and image, reset the store, unmount whatever is still
        mounted under :attr:`base` (deepest first) and remove it. Safe to call twice."""
        if not os.path.isdir(self.base):
            return
        for args in (["rm", "-af"], ["rmi", "-af"], ["system", "reset", "-f"]):
            try:
                subprocess.run(self.cmd(*args), env=self.env, capture_output=True, timeout=120)
            except subprocess.TimeoutExpired:
                pass
        for mountpoint in sorted(self.mounts(), reverse=True):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def mounts(self) -> list[str]:
        """Mount points at or under :attr:`base`."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [p for p in points if p == self.base or p.startswith(self.base + "/")]

    def __enter__(self) -> "Podman":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def skopeo(*args, check=True, timeout=120) -> subprocess.CompletedProcess:
    """For tests: ``skopeo --insecure-policy ARGS`` (text); skips when skopeo is not
    installed. With ``check``, a failure raises AssertionError with skopeo's output."""
    need("skopeo")
    cmd = SKOPEO + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise _failed(cmd, r)
    return r
