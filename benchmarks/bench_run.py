#!/usr/bin/env python3
"""``run --rm --network none busybox true``: minidocker next to podman and runc, in one run.

Prints the median of each and the ratios to podman and runc. Nothing is asserted: speed
is compared side by side, never as a timed test. Run as root after ``scripts/setup.sh``::

    sudo .venv/bin/python benchmarks/bench_run.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
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


def timed(cmd, env=None, n=20) -> float:
    """Median wall time of ``cmd`` over ``n`` runs (after one warm-up run)."""
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="runs per tool (default 20)")
    args = parser.parse_args()
    from minidocker.image.rootfs import make_busybox_rootfs

    work = tempfile.mkdtemp(prefix="bench-run-")
    results = {}
    try:
        rootfs = os.path.join(work, "bundle", "rootfs")
        os.makedirs(rootfs)
        make_busybox_rootfs(rootfs)

        env = dict(os.environ, MINIDOCKER_ROOT=os.path.join(work, "md"))
        md = [sys.executable, "-m", "minidocker"]
        subprocess.run(md + ["bootstrap", "busybox"], env=env, check=True, stdout=subprocess.DEVNULL)
        results["minidocker"] = timed(md + ["run", "--rm", "--network", "none", "busybox", "true"],
                                      env, args.n)

        if shutil.which("runc"):
            spec = subprocess.run(["runc", "spec", "--bundle", os.path.join(work, "bundle")],
                                  check=True)
            config_path = os.path.join(work, "bundle", "config.json")
            with open(config_path) as f:
                config = json.load(f)
            config["process"].update(terminal=False, args=["true"])
            with open(config_path, "w") as f:
                json.dump(config, f)
            results["runc"] = timed(["runc", "--root", os.path.join(work, "runc"), "run",
                                     "--bundle", os.path.join(work, "bundle"), "bench"], n=args.n)
            del spec

        if shutil.which("podman"):
            podman = Podman(storage="overlay", prefix="bench-run-podman-")
            try:
                podman.import_rootfs(rootfs, "localhost/busybox")
                results["podman"] = timed(podman.cmd("run", "--rm", "--network", "none",
                                                     "localhost/busybox", "true"), podman.env, args.n)
            finally:
                podman.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("run --rm --network none busybox true", results)


if __name__ == "__main__":
    main()
