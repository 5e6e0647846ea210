"""``docker exec`` over the API: an exec is made, then started, then inspected.

::

    POST /containers/{id}/exec   {"Cmd": ["sh"], "Tty": true, "AttachStdin": true, ...} -> {"Id": E}
    POST /exec/{E}/start         {"Detach": false, "Tty": true}   -> 101, raw bytes both ways
    POST /exec/{E}/resize?h=&w=
    GET  /exec/{E}/json          {"Running": false, "ExitCode": 0, ...}

The docker CLI reads the exit code from the last call, after the stream has ended:
so the service records it before it closes the hijacked connection. Docker keeps exec
records in the daemon's memory, and so does the service (they are gone with it).
The process runs under a shim (:mod:`minidocker.engine.execs`).
"""

from __future__ import annotations

import fcntl
import os
import selectors
import struct
import termios
import threading

from ..engine import attach as frames
from ..errors import NotFound
from .http import ApiError, Hijack, check_type, json_response, no_content
from .router import route

EXECS: dict[str, dict] = {}
_LOCK = threading.Lock()


def _record(exec_id: str) -> dict:
    with _LOCK:
        rec = EXECS.get(exec_id)
    if rec is None:
        raise NotFound(f"No such exec instance: {exec_id}")
    return rec


#: finished execs kept for inspection (the docker CLI asks for the exit code right after
#: the end); older ones are forgotten, so that the service's memory stays bounded
KEEP_FINISHED = 256


def _forget_finished() -> None:
    finished = [k for k, r in EXECS.items() if r["_started"] and not r["Running"]]
    for key in finished[:max(0, len(finished) - KEEP_FINISHED)]:
        del EXECS[key]


@route("POST", "/containers/{id}/exec")
def create_exec(req):
    from ..engine.containers import resolve
    from ..engine.execs import exec_options
    from ..engine.lifecycle import reconcile
    c = reconcile(resolve(req.params["id"]))
    body = req.json(default=None)
    check_type(body, dict, "body")
    if not body:
        raise ApiError(400, "exec config is empty")
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    check_type(cmd, list, "Cmd")
    if not cmd or not all(isinstance(a, str) for a in cmd):
        raise ApiError(400, "No exec command specified")
    env = check_type(body.get("Env"), list, "Env") or []
    user = check_type(body.get("User"), str, "User") or None
    workdir = check_type(body.get("WorkingDir"), str, "WorkingDir") or None
    for key in ("Tty", "AttachStdin", "AttachStdout", "AttachStderr", "Privileged"):
        check_type(body.get(key), bool, key)
    if body.get("Privileged"):
        raise ApiError(400, "exec --privileged is not supported by minidocker")
    exec_options(c, user, workdir, env)       # the container runs, not paused; the user exists
    exec_id = os.urandom(32).hex()
    with _LOCK:
        _forget_finished()
        EXECS[exec_id] = {
            "ID": exec_id, "Running": False, "ExitCode": None, "Pid": 0,
            "ContainerID": c.id, "CanRemove": False,
            "DetachKeys": check_type(body.get("DetachKeys"), str, "DetachKeys") or "",
            "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
            "OpenStderr": bool(body.get("AttachStderr")),
            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0],
                              "arguments": cmd[1:], "privileged": False, "user": user or ""},
            "_env": env, "_workdir": workdir, "_cmd": cmd, "_master": None, "_started": False,
        }
    c.emit(f"exec_create: {' '.join(cmd)}", execID=exec_id)
    return json_response({"Id": exec_id}, status=201)


@route("GET", "/exec/{id}/json")
def inspect_exec(req):
    rec = _record(req.params["id"])
    return json_response({k: v for k, v in rec.items() if not k.startswith("_")})


@route("POST", "/exec/{id}/resize")
def resize_exec(req):
    rec = _record(req.params["id"])
    h, w = req.query_int("h"), req.query_int("w")
    if h is None or w is None or h < 0 or w < 0:
        raise ApiError(400, "h and w must be non-negative integers")
    master = rec.get("_master")
    if master is None:
        if not rec["Running"]:
            raise ApiError(409, f"Exec {rec['ID']} is not running")
        return no_content(201)
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
    except OSError:
        pass
    return no_content(201)


def _spawn(rec: dict, stdin: bool):
    """Start the exec's process; (process, stdin fd of ours or None, {fd: stream})."""
    from ..engine.containers import resolve
    from ..engine.execs import spawn
    c = resolve(rec["ContainerID"])
    tty = rec["ProcessConfig"]["tty"]
    ours: dict[int, int] = {}
    stdin_w = None
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    theirs = []
    try:
        if tty:
            stdio = (devnull, devnull, devnull)
        else:
            if stdin:
                in_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                theirs.append(in_r)
            else:
                in_r = devnull
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            theirs += [out_w, err_w]
            ours = {out_r: frames.STDOUT, err_r: frames.STDERR}
            stdio = (in_r, out_w, err_w)
        proc = spawn(c, rec["_cmd"], stdio, tty=tty, user=rec["ProcessConfig"]["user"] or None,
                     workdir=rec["_workdir"], env=rec["_env"])
    except BaseException:
        for fd in [*ours, *([stdin_w] if stdin_w is not None else [])]:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
        os.close(devnull)
    if tty:
        stdin_w = proc.master_fd
        ours = {proc.master_fd: frames.STDOUT}
    rec.update(Running=True, Pid=proc.pid, _master=proc.master_fd if tty else None)
    c.emit(f"exec_start: {' '.join(rec['_cmd'])}", execID=rec["ID"])
    return c, proc, stdin_w, ours


def _finish(c, rec: dict, proc) -> None:
    code = proc.wait()
    if proc.exec_error:
        code = 126 if "permission denied" in proc.exec_error.lower() else 127
    rec.update(Running=False, ExitCode=code, _master=None)
    c.emit("exec_die", execID=rec["ID"], exitCode=str(code))


@route("POST", "/exec/{id}/start")
def start_exec(req):
    rec = _record(req.params["id"])
    body = req.json(default=None) or {}
    check_type(body, dict, "body")
    with _LOCK:
        if rec["_started"]:
            raise ApiError(409, f"Exec {rec['ID']} has already been started")
        rec["_started"] = True
    if body.get("Detach"):
        c, proc, stdin_w, ours = _spawn(rec, stdin=False)
        if stdin_w is not None and not rec["ProcessConfig"]["tty"]:
            os.close(stdin_w)

        def drain():
            _copy_out(ours, None, rec["ProcessConfig"]["tty"])
            _finish(c, rec, proc)
            proc.close_master()
        threading.Thread(target=drain, daemon=True).start()
        return no_content(200)
    from ..engine.containers import resolve
    from ..engine.execs import exec_options
    from ..engine.lifecycle import reconcile
    c = reconcile(resolve(rec["ContainerID"]))
    exec_options(c, rec["ProcessConfig"]["user"] or None, rec["_workdir"], rec["_env"])
    tty = rec["ProcessConfig"]["tty"]

    def session(reader, writer):
        # The process starts only now, after the 101 answer: a client that reads the
        # answer's head through a buffer and then takes the raw socket (docker-py) would
        # lose output that came with the head.
        try:
            c, proc, stdin_w, ours = _spawn(rec, stdin=rec["OpenStdin"])
        except Exception as e:     # noqa: BLE001 - the HTTP answer is gone: say it in the stream
            rec.update(Running=False, ExitCode=126)
            message = f"exec failed: {e}\n".encode()
            writer.write(message if tty else frames.frame(frames.STDERR, message))
            return
        if rec["OpenStdin"] and stdin_w is not None:
            threading.Thread(target=_copy_in, args=(reader, stdin_w, tty), daemon=True).start()
        try:
            _copy_out(ours, writer, tty)
        finally:
            _finish(c, rec, proc)       # the exit code is known before the client's EOF
            if not tty and stdin_w is not None:
                try:
                    os.close(stdin_w)
                except OSError:
                    pass
            proc.close_master()
    return Hijack(session)


def _copy_in(reader, fd: int, tty: bool) -> None:
    """The client's bytes into the process's stdin; its EOF closes the pipe (a pty gets
    the terminal's end-of-file character instead)."""
    try:
        while True:
            data = reader.read1(65536)
            if not data:
                break
            while data:
                data = data[os.write(fd, data):]
        if tty:
            os.write(fd, b"\x04")
        else:
            os.close(fd)
    except (OSError, ValueError):
        pass


def _copy_out(ours: dict[int, int], writer, tty: bool) -> None:
    """The process's output to the client (framed without a tty) until it closes it;
    once the client is gone, go on reading so that the process never blocks."""
    sel = selectors.DefaultSelector()
    for fd in ours:
        sel.register(fd, selectors.EVENT_READ)
    try:
        while sel.get_map():
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, 65536)
                except OSError:          # EIO: the pty's last slave is closed
                    data = b""
                if not data:
                    sel.unregister(key.fd)
                    if not tty:
                        os.close(key.fd)
                    continue
                if writer is not None and not getattr(writer, "closed", False):
                    try:
                        writer.write(data if tty else frames.frame(ours[key.fd], data))
                    except Exception:   # ClientGone: keep draining
                        writer = None
    finally:
        sel.close()
