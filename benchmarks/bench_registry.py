#!/usr/bin/env python3
"""push and pull of a ~200 MB image against Debian's Distribution registry, next to skopeo.

Four measurements, each the median of ``-n`` runs, minidocker and ``skopeo copy`` side by
side:

- push, cold: a fresh registry (no blob there yet);
- push, warm: every blob already there (only HEADs and the manifest travel);
- pull, cold: minidocker pulls into an empty data root (download, verify, *and* extract
  every layer, ready to run) while skopeo copies to an OCI layout directory (download and
  verify only: it extracts nothing);
- pull, warm: minidocker with the image present ("Image is up to date"), skopeo again
  into the same layout.

``podman pull`` (vfs storage) is shown for the cold pull too: like minidocker, it
unpacks every layer, so it is the like-for-like comparison there.

Nothing is asserted: speed is compared side by side, never in a timed test. Run as root
after ``scripts/setup.sh``::

    sudo .venv/bin/python benchmarks/bench_registry.py [-n 3] [--size-mb 200]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.common import SKOPEO, Podman, report  # noqa: E402

MD = [sys.executable, "-m", "minidocker"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distribution:
    """docker-registry on 127.0.0.1 with a private config and storage (MACHINE.md)."""

    def __init__(self, work: str):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(dir=work, prefix="registry-")
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write("version: 0.1\n"
                    f"storage: {{filesystem: {{rootdirectory: {self.dir}/data}}}}\n"
                    f"http: {{addr: 127.0.0.1:{self.port}}}\n"
                    "log: {level: error, accesslog: {disabled: true}}\n")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", config],
                                     stdout=self.log, stderr=self.log)
        self.host = f"127.0.0.1:{self.port}"
        import requests
        for _ in range(200):
            try:
                requests.get(f"http://{self.host}/v2/", timeout=1)
                return
            except requests.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def build_image(root: str, size_mb: int) -> str:
    """busybox plus four layers of incompressible data (~size_mb in all), gzip'd as a
    pushed image's layers are; tagged ``bench:latest``."""
    from minidocker.image.busybox import make_busybox_rootfs
    from minidocker.image.store import Store, new_config
    store = Store(root)
    rootfs = tempfile.mkdtemp(dir=root)
    make_busybox_rootfs(rootfs)
    layers = [_gzip_tar_of_dir(rootfs)]
    shutil.rmtree(rootfs)
    per_layer = size_mb * 1_000_000 // 4
    for i in range(4):
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as gz:
            with tarfile.open(fileobj=gz, mode="w") as tar:
                info = tarfile.TarInfo(f"data/blob{i}")
                info.size = per_layer
                tar.addfile(info, io.BytesIO(os.urandom(per_layer)))
        layers.append(buf.getvalue())
    descriptors = [store.add_layer(io.BytesIO(data)) for data in layers]
    config = new_config(cmd=["sh"], diff_ids=[d["diff_id"] for d in descriptors])
    image_id = store.write_image(config, descriptors)
    store.tag(image_id, "bench:latest")
    return image_id


def _gzip_tar_of_dir(path: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            tar.add(path, arcname=".")
    return buf.getvalue()


def export_oci_layout(root: str, image_id: str, layout: str) -> None:
    """The same image as an OCI layout on disk, for skopeo to push (hard links: no copy)."""
    from minidocker.image.store import Store, canonical_json
    store = Store(root)
    manifest = store.image_manifest(image_id)
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    for desc in [manifest["config"], *manifest["layers"]]:
        os.link(store.blob_path(desc["digest"]), os.path.join(blobs, desc["digest"][7:]))
    body = canonical_json(manifest)
    import hashlib
    digest = hashlib.sha256(body).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(body)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": manifest["mediaType"], "digest": "sha256:" + digest, "size": len(body),
            "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}, f)


PEAK_RSS: dict[str, int] = {}


def timed(cmd, env=None) -> float:
    """Wall time of ``cmd``; its peak memory (max RSS, from wait4) is kept per tool, to
    show that memory stays flat whatever the layer size (streaming, no whole blobs)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    tool = next((t for t in ("skopeo", "podman") if t in cmd), "minidocker")
    PEAK_RSS[tool] = max(PEAK_RSS.get(tool, 0), usage.ru_maxrss)
    return elapsed


def median_of(n, setup, cmd_of, env=None) -> float:
    """``setup()`` (untimed) returns a context; ``cmd_of(context)`` is then timed, with
    ``env`` (``env(context)`` if callable); the context's ``stop()`` or ``cleanup()``
    (untimed) after."""
    samples = []
    for _ in range(n):
        ctx = setup()
        try:
            samples.append(timed(cmd_of(ctx), env(ctx) if callable(env) else env))
        finally:
            cleanup = getattr(ctx, "stop", None) or getattr(ctx, "cleanup", None)
            if cleanup:
                cleanup()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--size-mb", type=int, default=200, help="image size (default 200)")
    args = parser.parse_args()
    for tool in ("docker-registry", "skopeo"):
        if not shutil.which(tool):
            sys.exit(f"bench_registry: {tool} is not installed (scripts/setup.sh)")
    work = tempfile.mkdtemp(prefix="bench-registry-")
    src = os.path.join(work, "source")
    os.makedirs(src)
    env = dict(os.environ, MINIDOCKER_ROOT=src,
               MINIDOCKER_CONFIG=os.path.join(work, "config.json"))
    results: dict[str, dict[str, float]] = {}
    try:
        print(f"building a {args.size_mb} MB image...", flush=True)
        # In a child process: the image's bytes must not inflate this process, whose
        # memory high-water mark its children inherit in their max RSS (fork, exec).
        image_id = subprocess.run(
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
             "from benchmarks.bench_registry import build_image; "
             "print(build_image(sys.argv[2], int(sys.argv[3])))", REPO, src, str(args.size_mb)],
            check=True, capture_output=True, text=True).stdout.strip()
        layout = os.path.join(work, "layout")
        export_oci_layout(src, image_id, layout)

        def tag_for(reg):
            from minidocker.image.store import Store
            ref = f"{reg.host}/bench/app:v1"
            Store(src).tag(image_id, ref)
            return ref

        def push_md(reg):
            return MD + ["push", tag_for(reg)]

        def push_skopeo(reg):
            return SKOPEO + ["copy", "--dest-tls-verify=false", f"oci:{layout}:bench",
                             f"docker://{reg.host}/bench/app:v1"]

        results["push, cold"] = {
            "minidocker": median_of(args.n, lambda: Distribution(work), push_md, env),
            "skopeo": median_of(args.n, lambda: Distribution(work), push_skopeo),
        }
        reg = Distribution(work)
        try:
            subprocess.run(push_md(reg), env=env, check=True, stdout=subprocess.DEVNULL)
            ref = f"{reg.host}/bench/app:v1"
            results["push, warm"] = {
                "minidocker": median_of(args.n, lambda: reg.host, lambda _: push_md(reg), env),
                "skopeo": median_of(args.n, lambda: reg.host, lambda _: push_skopeo(reg)),
            }

            def fresh_root():
                root = tempfile.mkdtemp(dir=work, prefix="pull-")
                return root

            def pull_md(root):
                return ["env", f"MINIDOCKER_ROOT={root}"] + MD + ["pull", ref]

            def pull_skopeo(root):
                return SKOPEO + ["copy", "--src-tls-verify=false", f"docker://{ref}",
                                 f"oci:{root}/layout:v1"]

            results["pull, cold"] = {
                "minidocker": median_of(args.n, fresh_root, pull_md, env),
                "skopeo": median_of(args.n, fresh_root, pull_skopeo),
            }
            if shutil.which("podman"):
                # podman pull also unpacks the layers (vfs: no overlay mounts to clean);
                # a fresh private store for each run
                def pull_podman(podman):
                    return podman.cmd("pull", "-q", "--tls-verify=false", ref)

                results["pull, cold"]["podman"] = median_of(
                    args.n, lambda: Podman(storage="vfs", prefix="bp-"), pull_podman,
                    lambda podman: podman.env)
            warm = fresh_root()
            subprocess.run(pull_md(warm), env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(pull_skopeo(warm), check=True, stdout=subprocess.DEVNULL)
            results["pull, warm"] = {
                "minidocker": median_of(args.n, lambda: warm, pull_md, env),
                "skopeo": median_of(args.n, lambda: warm, pull_skopeo),
            }
        finally:
            reg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for title, numbers in results.items():
        report(f"{title} ({args.size_mb} MB image, Distribution on 127.0.0.1)", numbers)
    print("\npeak memory (max RSS of any run): " +
          ", ".join(f"{tool} {kb / 1024:.0f} MB" for tool, kb in PEAK_RSS.items()))


if __name__ == "__main__":
    main()
