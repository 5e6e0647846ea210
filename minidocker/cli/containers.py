"""Container verbs: run, create, start, ps, logs, stop, kill, rm, pause, unpause, exec,
inspect, wait, top, restart, rename (attach, cp and stats have modules of their own).

Flags, output and exit codes follow ``docker`` (``docker run --help`` is the reference).
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import MinidockerError, NotFound

PASS_THROUGH = {"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]}


def _store():
    from ..image.store import Store
    return Store()


def container_options(f):
    """The options ``run`` and ``create`` share (Docker's names)."""
    options = [
        click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Set environment variables"),
        click.option("--env-file", multiple=True, type=click.Path(), help="Read in a file of environment variables"),
        click.option("-w", "--workdir", help="Working directory inside the container"),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image"),
        click.option("--name", help="Assign a name to the container"),
        click.option("-h", "--hostname", help="Container host name"),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits"),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("--network", "--net", "network", default="bridge", show_default=True,
                     help="Connect a container to a network (bridge, none, host, container:NAME, NAME)"),
        click.option("--network-alias", "--net-alias", "network_alias", multiple=True,
                     help="Add network-scoped alias for the container"),
        click.option("-m", "--memory", help="Memory limit (e.g. 32m)"),
        click.option("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
        click.option("--cpus", help="Number of CPUs (e.g. 0.5)"),
        click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)"),
        click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)"),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities"),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities"),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container"),
        click.option("--security-opt", multiple=True, help="Security options (no-new-privileges)"),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host"),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports"),
        click.option("--link", multiple=True, help="Add link to another container (NAME[:ALIAS])"),
        click.option("--add-host", multiple=True, metavar="HOST:IP",
                     help="Add a custom host-to-IP mapping (host:ip)"),
        click.option("-v", "--volume", multiple=True, help="Bind mount a volume"),
        click.option("--mount", multiple=True, help="Attach a filesystem mount to the container"),
        click.option("--volumes-from", multiple=True, help="Mount volumes from the specified container(s)"),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only"),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory"),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container"),
        click.option("--pull", type=click.Choice(["always", "missing", "never"]), default="missing",
                     show_default=True, help="Pull image before running"),
        click.option("--runtime", default=None,
                     help="Runtime to use for this container: minidocker (built in, the "
                          "default, or $MINIDOCKER_DEFAULT_RUNTIME) or a runc-compatible "
                          "binary (runc, minidocker-runtime, a path)"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _create(image, command, opts):
    from ..engine.create import create_container
    if opts.get("cpus"):
        try:
            float(opts["cpus"])
        except ValueError:
            raise MinidockerError(f'invalid argument "{opts["cpus"]}" for "--cpus" flag') from None
    return create_container(_store(), image, list(command) or None, opts, pull=_pull)


def _pull(image_ref, store, out):
    """How ``run`` and ``create`` fetch a missing image: the front end hands the engine
    the registry client (the engine never imports it; requests loads only here)."""
    from ..registry import client
    return client.pull(image_ref, store, out=out)


@click.command(context_settings=PASS_THROUGH)
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(image, command, **opts):
    """Create and run a new container from an image."""
    from ..engine import lifecycle
    c = _create(image, command, opts)
    store = _store()
    if opts["detach"]:
        lifecycle.start(c, store, attach=False)  # --rm: the container's monitor removes it
        click.echo(c.id)
        return
    code = lifecycle.start(c, store, attach=True)
    sys.exit(code)


@click.command(context_settings=PASS_THROUGH)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(image, command, **opts):
    """Create a new container (not started)."""
    c = _create(image, command, opts)
    click.echo(c.id)


def _each(refs, action):
    """Apply ``action`` to each container like Docker: errors are printed, exit 1 at the end."""
    from ..engine.containers import resolve
    failed = False
    for ref in refs:
        try:
            action(resolve(ref), ref)
        except MinidockerError as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.argument("containers", nargs=-1, required=True)
def start(attach, interactive, containers):
    """Start one or more stopped containers."""
    from ..engine import lifecycle
    from ..engine.containers import resolve
    store = _store()
    if attach:
        if len(containers) > 1:
            raise MinidockerError("you cannot start and attach multiple containers at once")
        c = resolve(containers[0])
        code = lifecycle.start(c, store, attach=True)
        sys.exit(code or 0)

    def one(c, ref):
        lifecycle.start(c, store, attach=False)
        click.echo(ref)
    _each(containers, one)


def _status(c) -> str:
    from .format import ago, human_duration, since
    st = c.state["State"]
    if st["Running"]:
        paused = " (Paused)" if st.get("Paused") else ""
        return f"Up {human_duration(since(st['StartedAt']))}{paused}"
    if st["Status"] == "created":
        return "Created"
    return f"Exited ({st['ExitCode']}) {ago(st['FinishedAt'])}"


def _ports(c) -> str:
    ports = (c.state.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    for ctr, bindings in sorted(ports.items()):
        for b in bindings or []:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}->{ctr}")
        if not bindings:
            out.append(ctr)
    return ", ".join(out)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--format", "fmt", help="Format output using a Go-like template ({{.Names}}\\t{{.Status}}; "
              "'table ...' for columns)")
def ps(all_, quiet, no_trunc, fmt):
    """List containers."""
    from ..engine.lifecycle import reconcile_all
    from .format import ago, format_listing, table
    shown = [c for c in reconcile_all() if all_ or c.state["State"]["Running"]]
    if quiet:
        for c in shown:
            click.echo(c.id if no_trunc else c.short_id)
        return
    rows = []
    for c in shown:
        command = " ".join([c.state["Path"], *c.state["Args"]])
        command = json.dumps(command if no_trunc or len(command) <= 20 else command[:19] + "…",
                             ensure_ascii=False)
        rows.append({"ID": c.id if no_trunc else c.short_id,
                     "Image": c.state.get("ImageName") or c.image_id[7:19], "Command": command,
                     "CreatedAt": c.state["Created"], "RunningFor": ago(c.state["Created"]),
                     "Status": _status(c), "State": c.state["State"]["Status"],
                     "Ports": _ports(c), "Names": c.name,
                     "Networks": c.state["HostConfig"]["NetworkMode"]})
    if fmt:
        if rows or fmt.startswith("table"):
            click.echo(format_listing(fmt, rows, PS_HEADERS))
        return
    columns = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    click.echo(table([[PS_HEADERS[k] for k in columns], *[[r[k] for k in columns] for r in rows]]))


#: ``ps``'s columns, by the name ``--format`` knows them by (Docker's).
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Status": "STATUS",
              "State": "STATE", "Ports": "PORTS", "Names": "NAMES", "Networks": "NETWORKS"}


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
@click.argument("container")
def logs(follow, timestamps, tail, container):
    """Fetch the logs of a container."""
    from ..engine import lifecycle
    from ..engine.containers import resolve
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise MinidockerError(f'invalid value for "tail": "{tail}"')
    lifecycle.logs(resolve(container), follow=follow, timestamps=timestamps, tail=tail)


@click.command()
@click.option("-t", "--time", "--timeout", "timeout", type=int, default=10,
              help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True)
def stop(timeout, containers):
    """Stop one or more running containers (SIGTERM, then SIGKILL)."""
    from ..engine import lifecycle

    def one(c, ref):
        lifecycle.stop(c, timeout)
        click.echo(ref)
    _each(containers, one)


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
def kill(sig, containers):
    """Kill one or more running containers."""
    from ..engine import lifecycle
    signum = lifecycle.parse_signal(sig)

    def one(c, ref):
        lifecycle.kill(c, signum)
        click.echo(ref)
    _each(containers, one)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.argument("containers", nargs=-1, required=True)
def rm(force, volumes, containers):
    """Remove one or more containers."""
    from ..engine import lifecycle

    def one(c, ref):
        lifecycle.remove(c, force=force, volumes=volumes)
        click.echo(ref)
    _each(containers, one)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def pause(containers):
    """Pause all processes within one or more containers."""
    from ..engine import lifecycle

    def one(c, ref):
        lifecycle.pause(c)
        click.echo(ref)
    _each(containers, one)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def unpause(containers):
    """Unpause all processes within one or more containers."""
    from ..engine import lifecycle

    def one(c, ref):
        lifecycle.unpause(c)
        click.echo(ref)
    _each(containers, one)


@click.command("exec", context_settings=PASS_THROUGH)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", help="Working directory inside the container")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(detach, interactive, tty, env, user, workdir, container, command):
    """Execute a command in a running container."""
    from ..engine import lifecycle
    from ..engine.containers import resolve
    code = lifecycle.exec_in(resolve(container), list(command), env=env, user=user, workdir=workdir,
                             tty=tty, interactive=interactive, detach=detach)
    sys.exit(code or 0)


@click.command()
@click.option("-f", "--format", "fmt", help="Format output using a Go-like template ({{.State.Pid}})")
@click.option("--type", "kind", type=click.Choice(["container", "image"]), help="Only this kind of object")
@click.argument("names", nargs=-1, required=True)
def inspect(fmt, kind, names):
    """Return low-level information on containers or images (JSON)."""
    from ..engine.containers import resolve
    from ..engine.lifecycle import reconcile
    from .format import print_inspected
    results, errors = [], []
    for name in names:
        try:
            if kind == "image":
                raise NotFound(name)
            c = reconcile(resolve(name))
            results.append(_inspect_container(c))
        except NotFound:
            try:
                if kind == "container":
                    raise
                results.append(_inspect_image(name))
            except NotFound:
                errors.append(f"Error: No such object: {name}")
    print_inspected(results, fmt, errors)


def _inspect_container(c) -> dict:
    state = {k: v for k, v in c.state.items() if not k.startswith("_")}
    state["Name"] = "/" + c.name
    state["State"] = dict({"Paused": False}, **state["State"], Restarting=False, Dead=False)
    return state


def _inspect_image(name) -> dict:
    from ..image.describe import inspect_image
    store = _store()
    return inspect_image(store, store.resolve(name))


@click.command()
@click.argument("containers", nargs=-1, required=True)
def wait(containers):
    """Block until one or more containers stop, then print their exit codes."""
    from ..engine import lifecycle
    _each(containers, lambda c, ref: click.echo(lifecycle.wait(c)))


@click.command(context_settings=PASS_THROUGH)
@click.argument("container")
@click.argument("ps_options", nargs=-1, type=click.UNPROCESSED)
def top(container, ps_options):
    """Display the running processes of a container (``ps`` OPTIONS, default -ef)."""
    from ..engine import lifecycle
    from ..engine.containers import resolve
    from .format import table
    # Docker runs ``ps`` on the host and keeps the lines of the container's processes.
    titles, rows = lifecycle.top(resolve(container), " ".join(ps_options) or "-ef")
    if titles:
        click.echo(table([titles, *rows]))


@click.command()
@click.option("-t", "--time", "--timeout", "timeout", type=int, default=None,
              help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True)
def restart(timeout, containers):
    """Restart one or more containers (stop, then start)."""
    from ..engine import lifecycle
    store = _store()

    def one(c, ref):
        t = timeout if timeout is not None else c.state["Config"].get("StopTimeout", 10)
        lifecycle.restart(c, store, 10 if t is None else t)
        click.echo(ref)
    _each(containers, one)


@click.command()
@click.argument("container")
@click.argument("new_name")
def rename(container, new_name):
    """Rename a container."""
    from ..engine import lifecycle
    from ..engine.containers import resolve
    lifecycle.rename(resolve(container), new_name)
