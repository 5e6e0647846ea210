"""Shared pieces of the benchmarks: the peer tools (podman, skopeo) as :mod:`peers` runs
them on this machine, and the report."""

from __future__ import annotations

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_peers():
    """``tests/peers.py``, the one module that knows how to run podman and skopeo here
    (MACHINE.md), shared with the tests. Loaded from its path, not by putting ``tests/``
    on ``sys.path``: that would let every test helper shadow other modules."""
    if "peers" in sys.modules:
        return sys.modules["peers"]
    spec = importlib.util.spec_from_file_location("peers", os.path.join(REPO, "tests", "peers.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module
    spec.loader.exec_module(module)
    return module


peers = _load_peers()
Podman = peers.Podman
SKOPEO = peers.SKOPEO


def report(title: str, results: dict[str, float]) -> None:
    """Print medians and every tool's ratio to minidocker, side by side."""
    print(f"\n{title}")
    print(f"{'tool':<12}{'median':>10}{'minidocker / tool':>20}")
    ours = results.get("minidocker")
    for tool, seconds in results.items():
        ratio = f"{ours / seconds:.2f}x" if ours and tool != "minidocker" else ""
        print(f"{tool:<12}{seconds * 1000:>8.1f}ms{ratio:>20}")
