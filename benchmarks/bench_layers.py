#!/usr/bin/env python3
"""commit, save and load of a ~200 MB image: minidocker next to podman.

Three measurements, each the median of ``-n`` runs, side by side:

- commit: a stopped container (busybox) that wrote ``--size-mb`` MB of random data in
  four files becomes an image; each run commits a different container (a layer already
  in the store would make later commits cheaper), made untimed beforehand;
- save: that image to a tar file (``save -o``; podman's default docker-archive);
- load: that tar into an empty store (a fresh data root / a fresh podman root each
  run): read, verify, store and, for minidocker, extract every layer ready to run.

podman uses its overlay driver and runc, with the containers.conf of MACHINE.md, in a
private root removed at the end. Nothing is asserted: speed is compared side by side,
never in a timed test. Run as root after ``scripts/setup.sh``::

    sudo .venv/bin/python benchmarks/bench_layers.py [-n 3] [--size-mb 200]
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

MD = [sys.executable, "-m", "minidocker"]


def writer_script(size_mb: int) -> str:
    """What each container runs: four files of random data (incompressible, so that no
    tool gains by compressing)."""
    per_file = size_mb * 1024 * 1024 // 4
    return " && ".join(f"head -c {per_file} /dev/urandom > /data{i}" for i in range(4))


def run(cmd, env=None) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench_layers: {' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def timed(cmd, env=None) -> float:
    t = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - t


def new_podman() -> Podman:
    """podman on its overlay driver with a private store (:mod:`peers`)."""
    return Podman(storage="overlay", prefix="bl-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--size-mb", type=int, default=200, help="data written (default 200)")
    args = parser.parse_args()
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            sys.exit(f"bench_layers: {tool} is not installed (scripts/setup.sh)")
    work = tempfile.mkdtemp(prefix="bench-layers-")
    root = os.path.join(work, "root")
    env = dict(os.environ, MINIDOCKER_ROOT=root)
    podmen: list[Podman] = []
    results: dict[str, dict[str, float]] = {}
    script = writer_script(args.size_mb)

    def md(*a):
        return MD + list(a)

    try:
        from minidocker.image.busybox import make_busybox_rootfs
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(rootfs)
        make_busybox_rootfs(rootfs)
        run(md("bootstrap", "busybox"), env)
        pod = new_podman()
        podmen.append(pod)
        pod.import_rootfs(rootfs, "localhost/busybox")

        print(f"writing {args.size_mb} MB in {2 * args.n} containers...", flush=True)
        for i in range(args.n):
            run(md("run", "--name", f"w{i}", "--network", "none", "busybox", "sh", "-c", script), env)
            run(pod.cmd("run", "--name", f"w{i}", "--network", "none", "localhost/busybox",
                    "sh", "-c", script), pod.env)
        results["commit"] = {
            "minidocker": statistics.median(timed(md("commit", f"w{i}", f"bench:{i}"), env)
                                            for i in range(args.n)),
            "podman": statistics.median(timed(pod.cmd("commit", "-q", f"w{i}", f"localhost/bench:{i}"),
                                              pod.env) for i in range(args.n)),
        }
        run(md("rm", *[f"w{i}" for i in range(args.n)]), env)
        run(pod.cmd("rm", *[f"w{i}" for i in range(args.n)]), pod.env)

        ours, theirs = os.path.join(work, "md.tar"), os.path.join(work, "podman.tar")

        def save_md():
            return timed(md("save", "-o", ours, "bench:0"), env)

        def save_podman():
            if os.path.exists(theirs):
                os.unlink(theirs)       # podman refuses to overwrite
            return timed(pod.cmd("save", "-o", theirs, "localhost/bench:0"), pod.env)

        results["save"] = {
            "minidocker": statistics.median(save_md() for _ in range(args.n)),
            "podman": statistics.median(save_podman() for _ in range(args.n)),
        }

        def load_md(i):
            fresh = os.path.join(work, f"load-{i}")
            return timed(md("load", "-i", ours), dict(env, MINIDOCKER_ROOT=fresh))

        def load_podman():
            fresh = new_podman()
            podmen.append(fresh)
            return timed(fresh.cmd("load", "-i", theirs), fresh.env)

        results["load"] = {
            "minidocker": statistics.median(load_md(i) for i in range(args.n)),
            "podman": statistics.median(load_podman() for _ in range(args.n)),
        }
        size = os.path.getsize(ours) / 1e6
    finally:
        subprocess.run(md("rm", "-f", *[f"w{i}" for i in range(args.n)]), env=env,
                       capture_output=True)
        for p in podmen:
            p.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    for title, numbers in results.items():
        report(f"{title} ({size:.0f} MB image)", numbers)


if __name__ == "__main__":
    main()
