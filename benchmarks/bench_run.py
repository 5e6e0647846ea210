#!/usr/bin/env python3
"""``run --rm busybox true``: minidocker next to podman and runc, in one run.

With the docker CLI 20.10 installed (``/usr/bin/docker``), also ``docker run --rm
busybox true`` through ``minidocker system service`` on the same data root: the Engine
API's cost (the docker client, create/attach/wait/start over HTTP, the service's forked
monitor) next to ``minidocker run`` and ``podman run``. The goal: no slower than podman.

Prints the median of each and the ratios to podman and runc. Nothing is asserted: speed
is compared side by side, never as a timed test. Run as root after ``scripts/setup.sh``::

    sudo .venv/bin/python benchmarks/bench_run.py [-n 20] [--network none|bridge]

``--network none`` (the default) times the container alone; ``--network bridge`` (each
engine's default network) adds a bridge, a veth pair, an address and NAT rules, made and
taken down again at every run by both engines when no other container uses them. runc
has no network of its own: it runs only with ``none``.

The tools take turns, one run each per round, so that load from elsewhere on the
machine (2 CPUs, shared) weighs on all of them alike and the ratios stay fair.
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


def timed(commands: dict[str, tuple[list[str], dict | None]], n: int = 20) -> dict[str, float]:
    """Median wall time of each command over ``n`` rounds, after one warm-up run each.
    A round runs every command once, in turn."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for cmd, env in commands.values():
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    for _ in range(n):
        for name, (cmd, env) in commands.items():
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            samples[name].append(time.perf_counter() - t)
    return {name: statistics.median(times) for name, times in samples.items()}


DOCKER_CLI = "/usr/bin/docker"     # 20.10 from Debian's docker.io (a newer one may be on PATH)


def _wait_for_socket(path: str, timeout: float = 20) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the API service did not listen on {path}")


def remove_netavark_chains() -> None:
    """podman's network backend (netavark) keeps its own iptables chains once it has made
    a bridge, also after the last one is gone. When this benchmark made them, it takes
    them away again (the jumps to them first), so that the host is left as it was."""
    from minidocker.network import firewall
    tables = firewall.read_tables()
    changes: dict[str, list[list[str]]] = {"nat": [], "filter": []}
    for table in changes:
        ours = {c for c in tables.chains[table] if c.startswith("NETAVARK")}
        changes[table] += [["-D", *w[1:]] for w in tables.rules[table]
                           if w[1] not in ours and w[-1] in ours]
        changes[table] += [["-F", c] for c in sorted(ours)] + [["-X", c] for c in sorted(ours)]
    firewall.apply(changes)


def netavark_chains() -> bool:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return "NETAVARK" in out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="runs per tool (default 20)")
    parser.add_argument("--network", choices=["none", "bridge"], default="none",
                        help="the containers' network (default none)")
    args = parser.parse_args()
    from minidocker.image.busybox import make_busybox_rootfs

    work = tempfile.mkdtemp(prefix="bench-run-")
    commands: dict[str, tuple[list[str], dict | None]] = {}
    podman = None
    service = None
    netavark_before = args.network == "bridge" and shutil.which("iptables-save") and netavark_chains()
    try:
        rootfs = os.path.join(work, "bundle", "rootfs")
        os.makedirs(rootfs)
        make_busybox_rootfs(rootfs)

        env = dict(os.environ, MINIDOCKER_ROOT=os.path.join(work, "md"))
        md = [sys.executable, "-m", "minidocker"]
        subprocess.run(md + ["bootstrap", "busybox"], env=env, check=True, stdout=subprocess.DEVNULL)
        commands["minidocker"] = (md + ["run", "--rm", "--network", args.network, "busybox", "true"], env)

        if shutil.which("runc") and args.network == "none":
            subprocess.run(["runc", "spec", "--bundle", os.path.join(work, "bundle")], check=True)
            config_path = os.path.join(work, "bundle", "config.json")
            with open(config_path) as f:
                config = json.load(f)
            config["process"].update(terminal=False, args=["true"])
            with open(config_path, "w") as f:
                json.dump(config, f)
            commands["runc"] = (["runc", "--root", os.path.join(work, "runc"), "run",
                                 "--bundle", os.path.join(work, "bundle"), "bench"], None)

        if os.path.exists(DOCKER_CLI):
            sock = os.path.join(work, "api.sock")
            service = subprocess.Popen(md + ["system", "service", "-H", f"unix://{sock}"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_for_socket(sock)
            commands["docker-api"] = ([DOCKER_CLI, "-H", f"unix://{sock}", "run", "--rm",
                                       "--network", args.network, "busybox", "true"],
                                      dict(os.environ, DOCKER_CONFIG=os.path.join(work, "dcfg")))

        if shutil.which("podman"):
            podman = Podman(storage="overlay", prefix="bench-run-podman-")
            podman.import_rootfs(rootfs, "localhost/busybox")
            commands["podman"] = (podman.cmd("run", "--rm", "--network", args.network,
                                             "localhost/busybox", "true"), podman.env)

        results = timed(commands, args.n)
    finally:
        if service is not None:
            service.terminate()
            service.wait()
        if podman is not None:
            podman.cleanup()
            if args.network == "bridge" and not netavark_before and netavark_chains():
                remove_netavark_chains()
        shutil.rmtree(work, ignore_errors=True)
    report(f"run --rm --network {args.network} busybox true", results)
    if "docker-api" in results and "podman" in results:
        print(f"docker CLI -> minidocker's API / podman run: "
              f"{results['docker-api'] / results['podman']:.2f}x (goal: <= 1)")


if __name__ == "__main__":
    main()
