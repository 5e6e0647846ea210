"""Shared pieces of the benchmarks: podman's settings for this machine, and the report."""

from __future__ import annotations

import os

PODMAN_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def podman_env(workdir: str) -> dict:
    """An environment for podman with a private containers.conf (see MACHINE.md: without
    the ulimits, every run fails on this machine's hard rlimits)."""
    path = os.path.join(workdir, "containers.conf")
    with open(path, "w") as f:
        f.write(PODMAN_CONF)
    return dict(os.environ, CONTAINERS_CONF=path)


def report(title: str, results: dict[str, float]) -> None:
    """Print medians and every tool's ratio to minidocker, side by side."""
    print(f"\n{title}")
    print(f"{'tool':<12}{'median':>10}{'minidocker / tool':>20}")
    ours = results.get("minidocker")
    for tool, seconds in results.items():
        ratio = f"{ours / seconds:.2f}x" if ours and tool != "minidocker" else ""
        print(f"{tool:<12}{seconds * 1000:>8.1f}ms{ratio:>20}")
