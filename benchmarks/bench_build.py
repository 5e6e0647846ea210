#!/usr/bin/env python3
"""``build`` of a 3-step Dockerfile, cold (``--no-cache``) and cached: minidocker next
to ``podman build``, in one run.

Prints the median of each and the ratios. Nothing is asserted: speed is compared side
by side, never as a timed test. Run as root after ``scripts/setup.sh``::

    sudo .venv/bin/python benchmarks/bench_build.py [-n 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.common import Podman, report  # noqa: E402

#: three steps, as in MACHINE.md's podman figures: a base, a RUN (a container and a
#: layer), a metadata step
DOCKERFILE = """FROM busybox
RUN echo built > /built.txt
ENV MESSAGE="nothing to say"
"""


def timed(cmd, env=None, n=10) -> float:
    """Median wall time of ``cmd`` over ``n`` runs (after one warm-up run)."""
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="builds per tool and mode (default 10)")
    args = parser.parse_args()
    from minidocker.image.busybox import make_busybox_rootfs

    work = tempfile.mkdtemp(prefix="bench-build-")
    cold, cached = {}, {}
    try:
        context = os.path.join(work, "context")
        os.makedirs(context)
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE)

        env = dict(os.environ, MINIDOCKER_ROOT=os.path.join(work, "md"))
        md = [sys.executable, "-m", "minidocker"]
        subprocess.run(md + ["bootstrap", "busybox"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        build = md + ["build", "--network", "none", "-t", "bench", context]
        cold["minidocker"] = timed(build + ["--no-cache"], env, args.n)
        cached["minidocker"] = timed(build, env, args.n)

        if shutil.which("podman"):
            podman = Podman(storage="overlay", prefix="bench-build-podman-")
            try:
                rootfs = os.path.join(work, "rootfs")
                os.makedirs(rootfs)
                make_busybox_rootfs(rootfs)
                os.chmod(rootfs, 0o755)
                podman.import_rootfs(rootfs, "localhost/busybox")
                pbuild = podman.cmd("build", "--pull=never", "--network", "none", "-t",
                                    "localhost/bench", context)
                cold["podman"] = timed(pbuild + ["--no-cache"], podman.env, args.n)
                cached["podman"] = timed(pbuild, podman.env, args.n)
            finally:
                podman.cleanup()
    finally:
        subprocess.run(md + ["rmi", "-f", "bench"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    report("build, 3 steps, cold (--no-cache)", cold)
    report("build, 3 steps, cached", cached)


if __name__ == "__main__":
    main()
