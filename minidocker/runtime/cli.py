"""``minidocker-runtime``: the runtime behind runc's command line, for any engine to drive.

This is the line between an engine and its runtime. dockerd (through containerd's
shim), podman (through conmon) and Kubernetes (through the CRI) never run a container
themselves: they write an OCI bundle and call ``runc`` with a handful of verbs::

    minidocker-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB ...

    create [--bundle DIR] [--pid-file F] [--console-socket S] ID   set up; init blocked
    start ID                                                       let the init exec
    state ID                                                       JSON: status, pid...
    kill [--all] ID [SIGNAL]                                       signal the init (or all)
    pause ID / resume ID                                           freeze / thaw the cgroup
    ps [--format table|json] ID [PS ARGS...]                       the container's processes
    exec [--process F | ARGS...] [--tty] [--detach] ID            one more process inside
    delete [--force] ID                                            take it all down
    list [--format table|json] [--quiet]                           every container
    spec / run                                                     a bundle by hand

Each verb is a new process: what ``create`` did is written under ``--root`` (see
:mod:`minidocker.runtime.state`), and the container's init waits for ``start`` on a FIFO there (see
:mod:`minidocker.runtime.create`). The flags, messages, output and exit codes are runc 1.1's, because
engines parse them: podman reads ``--log`` (``--log-format json``) when a verb fails,
and maps "executable file not found" to exit 127. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from .. import __version__
from ..clock import rfc3339
from ..errors import InvalidInput, MinidockerError, NotFound
from . import spec as runtime_spec
from . import state as states
from .console import check_console_socket, send_console
from .create import create, release_init, start
from .exec import spawn_in
from .pty import relay_terminal
from .spec import OCI_VERSION, load_spec, rootfs_path

PROG = "minidocker-runtime"


# --------------------------------------------------------------------------- the log
class Log:
    """runc's log (``--log``, ``--log-format``, ``--debug``), one line per message.

    text: ``time="2024-05-01T10:00:00Z" level=error msg="container does not exist"``;
    json: ``{"level": "error", "msg": "...", "time": "..."}`` (the keys sorted, as
    Go's logrus writes them). Without ``--log`` it goes to stderr.
    """

    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.path, self.format, self.debug_on = path, fmt, debug

    def line(self, level: str, message: str) -> str:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.format == "json":
            return json.dumps({"level": level, "msg": message, "time": now}, sort_keys=True)
        return f'time="{now}" level={level} msg={_logfmt_value(message)}'

    def write(self, level: str, message: str) -> None:
        text = self.line(level, message) + "\n"
        if self.path:
            try:
                with open(self.path, "a") as f:
                    f.write(text)
                return
            except OSError:
                pass
        sys.stderr.write(text)
        sys.stderr.flush()

    def debug(self, message: str) -> None:
        if self.debug_on:
            self.write("debug", message)

    def warning(self, message: str) -> None:
        self.write("warning", message)

    def fatal(self, message: str) -> int:
        """Log the error; when the log is a file, say it on stderr as well (plainly,
        as runc does: conmon passes a failing runtime's stderr on to podman)."""
        self.write("error", message)
        if self.path:
            print(message, file=sys.stderr, flush=True)
        return 1


def _logfmt_value(text: str) -> str:
    """A logfmt value: bare if it is one plain word, else quoted like Go's ``%q``."""
    if text and all(c.isalnum() or c in "-._/@^+" for c in text):
        return text
    return json.dumps(text)


class Usage(MinidockerError):
    """A command line that makes no sense (runc: "Incorrect Usage")."""


# --------------------------------------------------------------------------- helpers
def parse_signal(text: str) -> int:
    """``9``, ``KILL``, ``kill``, ``SIGKILL``, ``sigkill`` -> 9 (runc's ``parseSignal``)."""
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise InvalidInput(f'unknown signal "{text}"')
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidInput(f'unknown signal "{text}"') from None


def write_pid_file(path: str, pid: int) -> None:
    """Write ``pid`` into ``path`` atomically (a reader never sees an empty file):
    conmon reads it as soon as ``create`` exits."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def open_state(args, container_id: str) -> states.ContainerState:
    return states.ContainerState(args.root, container_id).open()


def wait_gone(st: states.ContainerState, timeout: float = 10.0) -> bool:
    """Wait for the init to have exited (a zombie counts: it only waits to be reaped by
    its parent, conmon or the shim, not by us)."""
    deadline = time.monotonic() + timeout
    while st.init_alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def destroy(st: states.ContainerState, log: Log) -> None:
    """Take down a container whose init is gone: whatever is left in its cgroup (a
    container without a PID namespace of its own may leave processes), the cgroup,
    and the state directory."""
    cg = st.cgroup()
    if cg is not None and cg.exists():
        if cg.is_frozen():
            cg.thaw()
        if cg.pids(recursive=True):
            cg.kill_all()
        cg.remove()
        log.debug(f"removed cgroup {cg.relpath}")
    st.remove()


def signal_all(cg, sig: int) -> None:
    """``kill --all``: every process of the cgroup, frozen first so that none can fork
    a new one between our reading the list and our signals (runc does the same)."""
    frozen_before = cg.is_frozen()
    try:
        cg.freeze()
    except OSError:
        frozen_before = True    # no freezer here: signal them as they run
    try:
        for pid in cg.pids(recursive=True):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if not frozen_before:
            cg.thaw()


# --------------------------------------------------------------------------- verbs
def cmd_create(args, log: Log) -> int:

    bundle = os.path.abspath(args.bundle)
    st = states.ContainerState(args.root, args.id)
    spec = load_spec(bundle)                     # the bundle is checked before anything is made
    terminal = bool(spec["process"].get("terminal"))
    console = _check_terminal_flags(terminal, args.console_socket, detach=True)
    if console:
        console = check_console_socket(console)
    st.make()
    proc = None
    try:
        proc = create(bundle, args.id, 0, 1, 2, state_dir=st.dir,
                      preserve_fds=args.preserve_fds)
        log.debug(f"init of {args.id} is pid {proc.pid}, blocked on {proc.fifo}")
        if proc.exec_error:
            raise MinidockerError(f"unable to start container process: {proc.exec_error}")
        if terminal:
            send_console(console, proc.master_fd)
        st.data = states.new_state(spec, bundle, rootfs_path(spec, bundle), proc.pid,
                                   rfc3339(), proc.cgroup)
        st.save()
        if args.pid_file:
            write_pid_file(args.pid_file, proc.pid)
        proc.detach()  # the init lives on; our exit re-parents it (see create.py)
    except BaseException as e:
        if proc is not None:
            proc.cleanup()
        st.remove()
        if isinstance(e, (MinidockerError, OSError)):
            raise MinidockerError(f"create failed: {_describe(e)}") from None
        raise
    finally:
        st.close()
    return 0


def _check_terminal_flags(terminal: bool, console: str | None, detach: bool) -> str | None:
    """runc's rules: a terminal for a detached process needs somebody to hand it to;
    a console socket without a terminal is a mistake."""
    if terminal and detach and not console:
        raise InvalidInput("cannot allocate tty if runc will detach without setting console socket")
    if console and not terminal:
        raise InvalidInput("cannot use console socket if runc will not detach or allocate tty")
    return console


def cmd_start(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        status = st.status()
        if status == states.STOPPED:
            raise MinidockerError("cannot start a container that has stopped")
        if status == states.RUNNING:
            raise MinidockerError("cannot start an already running container")
        if status != states.CREATED:
            raise MinidockerError(f"cannot start a container in the {status} state")
        try:
            release_init(st.fifo, st.data["pid"])
        finally:
            os.unlink(st.fifo)
        log.debug(f"started {args.id}")
    return 0


def cmd_state(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        print(json.dumps(st.oci_state(), indent=2))
    return 0


def cmd_kill(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        sig = parse_signal(args.signal)
        status = st.status()
        cg = st.cgroup()
        if args.all:
            if cg is not None and cg.exists():
                signal_all(cg, sig)
            return 0
        if status == states.STOPPED:
            raise MinidockerError("container not running")
        os.kill(st.data["pid"], sig)
        if status == states.PAUSED and sig == signal.SIGKILL and cg is not None:
            cg.thaw()  # a frozen process dies only once it runs again (cgroup v1)
        log.debug(f"sent signal {sig} to {args.id}")
    return 0


def cmd_delete(args, log: Log) -> int:
    try:
        st = open_state(args, args.id)
    except NotFound:
        # A directory without state.json is a create that died half-way: clear it.
        leftover = states.ContainerState(args.root, args.id)
        if os.path.isdir(leftover.dir):
            leftover.remove()
        if args.force:
            return 0
        raise
    with st:
        status = st.status()
        if status in (states.RUNNING, states.PAUSED) and not args.force:
            raise MinidockerError(f"cannot delete container {args.id} that is not stopped: {status}")
        if status != states.STOPPED:
            cg = st.cgroup()
            if args.force and not st.own_pid_namespace() and cg is not None and cg.exists():
                # Without a PID namespace of its own, the init's death kills nobody else
                # (with one, the kernel kills every process in it: SIGKILL to the init
                # is enough, as runc does it).
                signal_all(cg, signal.SIGKILL)
            try:
                os.kill(st.data["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            if cg is not None and status == states.PAUSED:
                cg.thaw()
            if not wait_gone(st):
                raise MinidockerError(f"container init {st.data['pid']} still running after SIGKILL")
        destroy(st, log)
        log.debug(f"deleted {args.id}")
    return 0


def cmd_pause(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        if st.status() not in (states.RUNNING, states.CREATED):
            raise MinidockerError("container not running")
        st.cgroup().freeze()
    return 0


def cmd_resume(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        if st.status() != states.PAUSED:
            raise MinidockerError("container not paused")
        st.cgroup().thaw()
    return 0


def cmd_ps(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        cg = st.cgroup()
        pids = cg.pids(recursive=True) if cg is not None and cg.exists() else []
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    if args.format != "table":
        raise InvalidInput("invalid format option")
    import subprocess   # here, not at the top: only ps runs a program (see find_verb)
    output = subprocess.run(["ps"] + (args.ps_args or ["-ef"]), capture_output=True, text=True)
    if output.returncode != 0:
        raise MinidockerError(f"ps: {output.stderr.strip() or output.stdout.strip()}")
    lines = output.stdout.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise MinidockerError("couldn't find PID field in ps output")
    column = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def cmd_list(args, log: Log) -> int:
    found = []
    for container_id in states.list_ids(args.root):
        st = states.ContainerState(args.root, container_id)
        try:
            with open(st.state_file) as f:
                st.data = json.load(f)   # no lock: a listing must not wait for anyone
        except (OSError, ValueError):
            continue                     # still being created, or being deleted
        found.append(st.oci_state(owner=st.owner_name()))
    if args.quiet:
        for item in found:
            print(item["id"])
        return 0
    if args.format == "json":
        print(json.dumps(found or None, separators=(",", ":")))
        return 0
    if args.format != "table":
        raise InvalidInput("invalid format option")
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]]
             for s in found]
    print(tabulate(rows), end="")
    return 0


def tabulate(rows: list[list[str]], minwidth: int = 12, padding: int = 3) -> str:
    """Columns as Go's ``tabwriter`` lays out runc's tables: each cell padded to its
    column's widest cell plus ``padding``, at least ``minwidth``; the last cell as is."""
    widths = [max(minwidth, max(len(row[i]) for row in rows) + padding)
              for i in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(w) for cell, w in zip(row, widths)) + row[-1] + "\n"
                   for row in rows)


def cmd_exec(args, log: Log) -> int:
    with open_state(args, args.id) as st:
        status = st.status()
        if status == states.STOPPED:
            raise MinidockerError("cannot exec in a stopped container")
        if status == states.PAUSED and not args.ignore_paused:
            raise MinidockerError("cannot exec in a paused container "
                                  "(use --ignore-paused to override)")
        config = st.data.get("config") or {}
        process = _exec_process(args, config)
        terminal = bool(process.get("terminal"))
        console = _check_terminal_flags(terminal, args.console_socket, args.detach)
        if console:
            console = check_console_socket(console)
        user = process.get("user") or {}
        handle = spawn_in(st.data["pid"], process["args"], env=process.get("env") or [],
                          cwd=process.get("cwd") or "/", uid=user.get("uid", 0),
                          gid=user.get("gid", 0), terminal=terminal, stdio=(0, 1, 2),
                          additional_gids=user.get("additionalGids") or (),
                          capabilities=process.get("capabilities"),
                          no_new_privileges=bool(process.get("noNewPrivileges")),
                          seccomp_profile=(config.get("linux") or {}).get("seccomp"),
                          preserve_fds=args.preserve_fds, rlimits=process.get("rlimits"))
    try:
        if handle.exec_error:
            handle.wait(forward_signals=False)
            raise MinidockerError("exec failed: unable to start container process: "
                                  f"{handle.exec_error}")
        log.debug(f"exec in {args.id}: pid {handle.pid}")
        if args.pid_file:
            write_pid_file(args.pid_file, handle.pid)
        if console:
            send_console(console, handle.master_fd)
            os.close(handle.master_fd)
            handle.master_fd = None
        if args.detach:
            handle.detach()   # it lives on, re-parented to our subreaper (conmon)
            return 0
        if handle.master_fd is not None:
            relay_terminal(handle.master_fd)
        return handle.wait()
    finally:
        handle.cleanup()


def _exec_process(args, config: dict) -> dict:
    """The OCI ``process`` to run: ``--process FILE`` as given, or the container's own
    with the command line's arguments and flags put in."""
    if args.process:
        try:
            with open(args.process) as f:
                process = json.load(f)
        except FileNotFoundError:
            raise InvalidInput(f"process file {args.process}: no such file or directory") from None
        except ValueError as e:
            raise InvalidInput(f"process file {args.process}: {e}") from None
        if args.tty:
            process["terminal"] = True
        if not process.get("args"):
            raise InvalidInput("args must not be empty")
        return process
    if not args.command:
        raise Usage('"exec" requires a minimum of 2 arguments')
    process = json.loads(json.dumps(config.get("process") or {}))
    process["args"] = list(args.command)
    process["terminal"] = bool(args.tty)
    if args.cwd:
        process["cwd"] = args.cwd
    process["env"] = list(process.get("env") or []) + list(args.env or [])
    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise InvalidInput(f"parsing {args.user} as uid:gid: only numbers are supported")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in args.additional_gids]
    if args.cap:
        caps = process.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = list(dict.fromkeys(list(caps.get(kind) or []) + list(args.cap)))
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    return process


def cmd_spec(args, log: Log) -> int:
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path) and not args.force:
        raise InvalidInput(f"File {path} exists. Remove it first (or use --force)")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    spec = runtime_spec.default_spec(command or ["sh"], hostname=args.hostname,
                                     rootfs=args.rootfs, cgroups_path=args.cgroups_path)
    os.makedirs(args.bundle, exist_ok=True)
    runtime_spec.write_spec(args.bundle, spec)
    print(path)
    return 0


def cmd_run(args, log: Log) -> int:
    """create + start + wait + delete in one process (``runc run``): the container's
    exit code is ours; its terminal, if it has one, is relayed to ours."""
    bundle = os.path.abspath(args.bundle)
    spec = load_spec(bundle)
    st = states.ContainerState(args.root, args.id).make()
    proc = None
    try:
        proc = create(bundle, args.id, 0, 1, 2, state_dir=st.dir)
        st.data = states.new_state(spec, bundle, rootfs_path(spec, bundle), proc.pid,
                                   rfc3339(), proc.cgroup)
        st.save()
        if args.pid_file:
            write_pid_file(args.pid_file, proc.pid)
        start(proc)
        st.close()                  # other verbs (state, kill, exec) work meanwhile
        if proc.master_fd is not None:
            relay_terminal(proc.master_fd)
        code = proc.wait()
        if proc.exec_error:
            log.write("error", proc.exec_error)
        return code
    finally:
        if proc is not None:
            proc.cleanup()
        if os.path.isdir(st.dir):
            st.lock()
            st.remove()
        st.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, MinidockerError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


# --------------------------------------------------------------------------- parsing
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help layout, with the terminal's width asked of ``os`` directly:
    argparse's own way imports ``shutil`` (and with it bz2, lzma...), ~5 ms of every
    start of a program that an engine runs three times per container."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = os.get_terminal_size().columns - 2
            except OSError:
                width = 78
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one error line, as runc does."""

    def __init__(self, *args, formatter_class=_Formatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message):
        raise Usage(message)


def _verb_create(verbs):
    p = verbs.add_parser("create", help="create a container")
    p.add_argument("--bundle", "-b", default=".", help="path to the root of the bundle directory")
    p.add_argument("--pid-file", help="file to write the init's host pid to")
    p.add_argument("--console-socket", help="unix socket to send the pty master to (terminal only)")
    p.add_argument("--no-pivot", action="store_true",
                   help="accepted for runc compatibility; pivot_root is always used")
    p.add_argument("--no-new-keyring", action="store_true",
                   help="accepted: this runtime never makes a session keyring")
    p.add_argument("--preserve-fds", type=int, default=0,
                   help="pass N more fds (3, 4, ...) to the container")
    p.add_argument("id")
    p.set_defaults(func=cmd_create)


def _verb_simple(name, func, text):
    def add(verbs):
        p = verbs.add_parser(name, help=text)
        p.add_argument("id")
        p.set_defaults(func=func)
    return add


def _verb_kill(verbs):
    p = verbs.add_parser("kill", help="send a signal (default: SIGTERM) to the container's init")
    p.add_argument("--all", "-a", action="store_true",
                   help="send it to every process of the container")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p.set_defaults(func=cmd_kill)


def _verb_delete(verbs):
    p = verbs.add_parser("delete", help="delete what the container holds (it must have stopped)")
    p.add_argument("--force", "-f", action="store_true",
                   help="kill it first (SIGKILL) if it still runs")
    p.add_argument("id")
    p.set_defaults(func=cmd_delete)


def _verb_ps(verbs):
    p = verbs.add_parser("ps", help="the processes running inside the container")
    p.add_argument("--format", "-f", default="table", help="table (ps -ef) or json (host pids)")
    p.add_argument("id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_ps)


def _verb_list(verbs):
    p = verbs.add_parser("list", help="list the containers under --root")
    p.add_argument("--format", "-f", default="table", help="table or json")
    p.add_argument("--quiet", "-q", action="store_true", help="only the ids")
    p.set_defaults(func=cmd_list)


def _verb_exec(verbs):
    p = verbs.add_parser("exec", help="execute a new process inside the container")
    p.add_argument("--process", "-p", help="an OCI process.json to run")
    p.add_argument("--tty", "-t", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("--detach", "-d", action="store_true", help="do not wait for the process")
    p.add_argument("--pid-file", help="file to write the process's host pid to")
    p.add_argument("--console-socket", help="unix socket to send the pty master to")
    p.add_argument("--cwd", help="working directory in the container")
    p.add_argument("--env", "-e", action="append", help="KEY=VALUE to add to the environment")
    p.add_argument("--user", "-u", help="UID[:GID]")
    p.add_argument("--additional-gids", "-g", action="append", help="an additional gid")
    p.add_argument("--cap", "-c", action="append", help="a capability to add (CAP_...)")
    p.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    p.add_argument("--ignore-paused", action="store_true", help="exec even in a paused container")
    p.add_argument("--preserve-fds", type=int, default=0, help="pass N more fds (3, 4, ...)")
    p.add_argument("id")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)


def _verb_spec(verbs):
    p = verbs.add_parser("spec", help="write Docker's default config.json into a bundle")
    p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    p.add_argument("--rootfs", default="rootfs", help="root.path (default: rootfs)")
    p.add_argument("--hostname", default="minidocker")
    p.add_argument("--cgroups-path", help="linux.cgroupsPath (default: none, which this "
                   "runtime reads as /minidocker/ID and runc as ID below its own cgroup)")
    p.add_argument("--force", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the container's command (default: sh)")
    p.set_defaults(func=cmd_spec)


def _verb_run(verbs):
    p = verbs.add_parser("run", help="create, start and wait for a container, then delete it")
    p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    p.add_argument("--pid-file", help="file to write the init's host pid to")
    p.add_argument("id", help="container id (its cgroup is /minidocker/ID unless the spec says)")
    p.set_defaults(func=cmd_run)


#: Each verb's arguments, in the order ``--help`` lists them.
VERBS = {
    "create": _verb_create,
    "start": _verb_simple("start", cmd_start,
                          "executes the user defined process in a created container"),
    "state": _verb_simple("state", cmd_state, "output the state of a container"),
    "kill": _verb_kill,
    "delete": _verb_delete,
    "pause": _verb_simple("pause", cmd_pause, "pause suspends all processes inside the container"),
    "resume": _verb_simple("resume", cmd_resume,
                           "resumes all processes that have been previously paused"),
    "ps": _verb_ps,
    "list": _verb_list,
    "exec": _verb_exec,
    "spec": _verb_spec,
    "run": _verb_run,
}

#: Global options that take a value (to find the verb without parsing everything).
_GLOBAL_WITH_VALUE = ("--root", "--log", "--log-format")


def find_verb(argv) -> str | None:
    """The verb of a command line (the first word that is not a global option)."""
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only``, just that verb's part (an engine
    starts this program three times per container: building twelve sub-parsers each
    time would be a good part of its run time)."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=states.DEFAULT_ROOT,
                        help="root directory for storage of container state "
                             f"(default: {states.DEFAULT_ROOT})")
    parser.add_argument("--log", help="set the log file to write runtime logs to (default: stderr)")
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="set the log format (default: text)")
    parser.add_argument("--debug", action="store_true", help="enable debug logging")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="refused: this runtime manages cgroupfs paths only")
    parser.add_argument("--version", "-v", action="version",
                        version=f"{PROG} version {__version__}\nspec: {OCI_VERSION}\n"
                                f"python: {sys.version.split()[0]}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    for name, add in VERBS.items():
        if only is None or only not in VERBS or name == only:
            add(verbs)
    return parser


def main(argv=None) -> int:
    log = Log()
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(find_verb(argv)).parse_args(argv)
        log = Log(args.log, args.log_format, args.debug)
        if args.systemd_cgroup:
            raise InvalidInput("--systemd-cgroup is not supported: this runtime manages "
                               "cgroupfs paths only (use podman --cgroup-manager cgroupfs)")
        if getattr(args, "id", None) is not None and args.verb != "spec":
            states.check_id(args.id)
        return args.func(args, log)
    except MinidockerError as e:
        return log.fatal(str(e))
    except BrokenPipeError:
        # The reader went away (``state ID | grep -q running``): end quietly, as a
        # program killed by SIGPIPE would; stdout is pointed at /dev/null so that
        # Python's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as e:
        return log.fatal(_describe(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
