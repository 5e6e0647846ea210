#!/usr/bin/env python3
"""The OCI runtime's command line: ``minidocker-runtime`` next to ``runc``, in one run.

Two measurements, each side by side:

* the bare cycle an engine drives for every container, ``create`` + ``start`` +
  ``delete`` of a busybox bundle running ``true`` (three processes per runtime, as
  conmon or containerd-shim starts them);
* ``podman run --rm --network none busybox true`` with ``--runtime minidocker-runtime``
  and with ``--runtime runc`` (podman and conmon around the same three calls).

Prints the medians and minidocker-runtime's time as a multiple of runc's (the goal for
the bare cycle: at most 3x). Nothing is asserted. Run as root after ``scripts/setup.sh``::

    sudo .venv/bin/python benchmarks/bench_runtime.py [-n 20]

The runtimes take turns, one cycle each per round, so that load from elsewhere on the
machine weighs on both alike.
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

OURS = os.path.join(os.path.dirname(sys.executable), "minidocker-runtime")


def reap() -> None:
    """We are the containers' subreaper (as conmon is): collect the inits that exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def cycle(binary: str, root: str, bundle: str, cid: str) -> float:
    """create + start + delete --force, each a new process; the wall time of the three."""
    devnull = subprocess.DEVNULL
    t = time.perf_counter()
    subprocess.run([binary, "--root", root, "create", "--bundle", bundle, cid], check=True,
                   stdin=devnull, stdout=devnull, stderr=devnull)
    subprocess.run([binary, "--root", root, "start", cid], check=True, stdin=devnull)
    subprocess.run([binary, "--root", root, "delete", "--force", cid], check=True, stdin=devnull)
    elapsed = time.perf_counter() - t
    reap()
    return elapsed


def bare_cycle(work: str, rootfs: str, n: int) -> dict[str, float]:
    bundle = os.path.join(work, "bundle")
    from minidocker.runtime import spec as runtime_spec
    spec = runtime_spec.default_spec(["true"], hostname="bench", cgroups_path="/minidocker/bench-runtime")
    spec["root"]["path"] = rootfs
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    runtimes = {"minidocker": OURS, "runc": shutil.which("runc")}
    runtimes = {name: path for name, path in runtimes.items() if path}
    samples = {name: [] for name in runtimes}
    for name, binary in runtimes.items():      # one warm-up cycle each
        cycle(binary, os.path.join(work, f"state-{name}"), bundle, "warmup")
    for i in range(n):
        for name, binary in runtimes.items():
            samples[name].append(cycle(binary, os.path.join(work, f"state-{name}"), bundle, f"c{i}"))
    return {name: statistics.median(times) for name, times in samples.items()}


def podman_run(rootfs: str, n: int) -> dict[str, float]:
    podman = Podman(storage="overlay", prefix="bench-rt-podman-")
    try:
        podman.import_rootfs(rootfs, "localhost/busybox")
        commands = {name: podman.cmd("--runtime", binary, "run", "--rm", "--network", "none",
                                     "localhost/busybox", "true")
                    for name, binary in (("minidocker", OURS), ("runc", shutil.which("runc")))}
        samples = {name: [] for name in commands}
        for cmd in commands.values():
            subprocess.run(cmd, env=podman.env, check=True, stdout=subprocess.DEVNULL)
        for _ in range(n):
            for name, cmd in commands.items():
                t = time.perf_counter()
                subprocess.run(cmd, env=podman.env, check=True, stdout=subprocess.DEVNULL)
                samples[name].append(time.perf_counter() - t)
        return {name: statistics.median(times) for name, times in samples.items()}
    finally:
        podman.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="cycles per runtime (default 20)")
    args = parser.parse_args()
    if not os.path.exists(OURS):
        sys.exit(f"{OURS} is not installed: run scripts/setup.sh")
    from minidocker.image.busybox import make_busybox_rootfs
    from minidocker.kernel import capabilities
    # Byte-compiled, as an installed package is (PYTHONDONTWRITEBYTECODE would otherwise
    # make every start compile the runtime's modules again).
    import compileall
    compileall.compile_dir(os.path.join(REPO, "minidocker"), quiet=1)
    capabilities.set_child_subreaper()
    work = tempfile.mkdtemp(prefix="bench-runtime-")
    try:
        rootfs = os.path.join(work, "rootfs")
        make_busybox_rootfs(rootfs)
        report("create + start + delete of a busybox bundle (minidocker = minidocker-runtime)",
               bare_cycle(work, rootfs, args.n))
        if shutil.which("podman") and shutil.which("runc"):
            report("podman run --rm --network none busybox true, by runtime "
                   "(minidocker = --runtime minidocker-runtime)", podman_run(rootfs, args.n))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
