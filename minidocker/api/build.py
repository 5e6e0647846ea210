"""``POST /build``: Docker's classic builder over HTTP (``DOCKER_BUILDKIT=0 docker
build``, ``docker-compose build``, docker-py's ``images.build``).

The client sends the build context as a tar in the body (the CLI has applied
``.dockerignore`` already; a Dockerfile from outside the context is added under a
random name, and named in ``dockerfile``), and the options in the query: ``t`` (one per
tag), ``dockerfile``, ``buildargs`` and ``labels`` (JSON objects), ``nocache``, ``q``,
``target``, ``networkmode``, ``rm``/``forcerm``. The answer streams what the builder
prints, one ``{"stream": "..."}`` message per line, as dockerd's classic builder sends
it; then ``{"aux": {"ID": "sha256:..."}}`` just before ``Successfully built``; a failure
ends the stream with ``{"errorDetail": {...}, "error": "..."}``, which the CLI prints
before exiting 1.

The build itself is ``minidocker build``, run as a child process on the context
unpacked in ``$ROOT/tmp`` (scratch owned by the service, :mod:`minidocker.scratch`): a
RUN step runs its container *attached* (its output goes to the builder's file
descriptors 1 and 2, and the builder forwards signals to it), which only a process of
its own can do; the service's threads share one set of descriptors and signal
handlers. A client that goes away cancels the build (SIGINT: the builder removes what
it made, as after Ctrl-C).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile

from .. import paths
from ..scratch import mkdtemp
from ..errors import InvalidInput
from .http import JsonStream, json_response
from .router import route

#: what the builder prints that dockerd does not send (the client prints it itself)
_CLIENT_LINE = "Sending build context to Docker daemon"


def _json_object(req, name: str) -> dict[str, str]:
    text = req.query_str(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInput(f"invalid {name}: {text!r} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"invalid {name}: expected a JSON object")
    # a null value means "declared but unset" (docker build --build-arg NAME with no
    # NAME in the client's environment): nothing to pass
    return {str(k): str(v) for k, v in value.items() if v is not None}


def unpack_context(body, dest: str) -> None:
    """Extract the context tar (plain, gzip, bzip2 or xz, as the CLI may compress it)
    into ``dest``. Python's ``tar`` extraction filter refuses members that would land
    outside ``dest`` (absolute paths, ``..``, writing through a symlink), and device
    files need no place in a build context."""
    try:
        with tarfile.open(fileobj=body, mode="r|*") as tar:
            for member in tar:
                if member.isdev():
                    continue
                tar.extract(member, dest, filter="tar")
    except tarfile.ReadError as e:
        if str(e) == "empty file":
            return                      # no context at all: `docker build - < Dockerfile`
        raise InvalidInput(f"the build context is not a valid tar archive: {e}") from None
    except (tarfile.TarError, EOFError) as e:
        raise InvalidInput(f"the build context is not a valid tar archive: {e}") from None


def build_command(req, context: str) -> list[str]:
    """The ``minidocker build`` command line for the request's options."""
    from ..image.store import normalize_name
    cmd = [sys.executable, "-m", "minidocker", "build"]
    for tag in req.query.get("t", []):
        if tag:
            normalize_name(tag)            # a bad name: 400 before anything runs
            cmd += ["-t", tag]
    dockerfile = req.query_str("dockerfile") or "Dockerfile"
    path = os.path.realpath(os.path.join(context, dockerfile))
    if not (path == context or path.startswith(context + os.sep)):
        raise InvalidInput(f"the Dockerfile ({dockerfile}) must be within the build context")
    if not os.path.isfile(path):
        raise InvalidInput(f"Cannot locate specified Dockerfile: {dockerfile}")
    cmd += ["-f", path]
    for key, value in _json_object(req, "buildargs").items():
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in _json_object(req, "labels").items():
        cmd += ["--label", f"{key}={value}"]
    if req.query_bool("nocache"):
        cmd.append("--no-cache")
    if req.query_bool("q"):
        cmd.append("-q")
    if req.query_str("target"):
        cmd += ["--target", req.query_str("target")]
    mode = req.query_str("networkmode") or "default"
    if mode not in ("default", "bridge", "host", "none"):
        raise InvalidInput(f"minidocker builds with networkmode bridge, host or none, not {mode}")
    cmd += ["--network", "bridge" if mode == "default" else mode]
    if req.query_bool("pull"):
        raise InvalidInput("minidocker's builder does not pull newer base images (pull=1); "
                           "pull them first")
    if req.query_str("remote"):
        raise InvalidInput("minidocker builds only from a context sent in the body, "
                           "not from a remote URL")
    cmd.append(context)
    return cmd


@route("POST", "/build")
def build(req):
    # owned by this process (its pid and start time in the name): a sweep by another
    # command leaves it alone while we live, and removes it if we are killed
    scratch = mkdtemp(paths.data_root(), "api-build")
    try:
        context = os.path.join(scratch, "context")
        os.mkdir(context)
        unpack_context(req.body, context)
        context = os.path.realpath(context)
        cmd = build_command(req, context)
        quiet = req.query_bool("q")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=dict(os.environ,
                                MINIDOCKER_ROOT=paths.data_root()), start_new_session=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return JsonStream(_messages(proc, scratch, quiet))


def _image_id(short: str) -> str | None:
    from ..image.store import Store
    try:
        return Store().resolve(short)
    except Exception:
        return None


def _messages(proc, scratch: str, quiet: bool):
    """The builder's lines as Docker's messages; the last ``minidocker: ...`` line of a
    failed build becomes the error."""
    held = None          # a "minidocker: ..." line: the error, if the build fails
    finished = False
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace")
            if line.startswith(_CLIENT_LINE):
                continue
            if held is not None:
                yield {"stream": held}
                held = None
            if line.startswith("minidocker: "):
                held = line
                continue
            text = line.rstrip("\n")
            if text.startswith("Successfully built "):
                image_id = _image_id(text.split()[-1])
                if image_id:
                    yield {"aux": {"ID": image_id}}
            elif quiet and text.startswith("sha256:"):
                yield {"aux": {"ID": text}}
            yield {"stream": line}
        code = proc.wait()
        finished = True
        if code != 0:
            message = (held or "minidocker: the build failed").removeprefix("minidocker: ").strip()
            detail = {"message": message}
            if "returned a non-zero code" in message:
                detail["code"] = int(message.rsplit(":", 1)[-1].strip() or 1)
            yield {"errorDetail": detail, "error": message}
        elif held is not None:
            yield {"stream": held}
    finally:
        if not finished:
            # The client went away: cancel the build as Ctrl-C would (the builder then
            # removes the images and containers it made).
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stdout.close()
        shutil.rmtree(scratch, ignore_errors=True)


@route("POST", "/build/prune")
def prune(req):
    """``docker builder prune``: minidocker's build cache is the step cache
    (``$ROOT/buildcache``), one small file per step naming the image it made; the
    images stay in the store (``image prune`` removes the untagged ones), so no space
    is reclaimed here, but the next build runs every step again."""
    from ..build.cache import StepCache
    removed = StepCache(paths.data_root()).clear()
    return json_response({"CachesDeleted": removed or None, "SpaceReclaimed": 0})
