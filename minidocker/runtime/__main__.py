"""``python -m minidocker.runtime``: the runtime on its own, like ``runc spec`` / ``runc run``.

    python -m minidocker.runtime spec --bundle DIR [-- COMMAND...]   write DIR/config.json
    python -m minidocker.runtime run --bundle DIR ID                 run the bundle, wait

A learner can write a bundle by hand (a root directory + ``config.json``), edit the
JSON, and run it with this and with ``runc run`` to compare. Only the standard library
is used. Errors are one line on stderr and exit status 125 (as Docker's).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import MinidockerError
from . import create, relay_terminal, start
from . import spec as runtime_spec

PROG = "python -m minidocker.runtime"


def cmd_spec(args) -> int:
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path) and not args.force:
        raise SystemExit(f"{PROG}: {path} exists (use --force to overwrite)")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    spec = runtime_spec.default_spec(command or ["sh"], hostname=args.hostname,
                                     rootfs=args.rootfs)
    os.makedirs(args.bundle, exist_ok=True)
    runtime_spec.write_spec(args.bundle, spec)
    print(path)
    return 0


def cmd_run(args) -> int:
    proc = create(args.bundle, args.id)
    try:
        start(proc)
        if proc.master_fd is not None:
            relay_terminal(proc.master_fd)
        code = proc.wait()
    finally:
        proc.cleanup()
    if proc.exec_error:
        print(f"{PROG}: {proc.exec_error}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("spec", help="write Docker's default config.json into a bundle")
    p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    p.add_argument("--rootfs", default="rootfs", help="root.path (default: rootfs)")
    p.add_argument("--hostname", default="minidocker")
    p.add_argument("--force", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the container's command (default: sh)")
    p.set_defaults(func=cmd_spec)
    p = verbs.add_parser("run", help="create, start and wait for the container of a bundle")
    p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
    p.add_argument("id", help="container id (its cgroup is minidocker/ID unless the spec says)")
    p.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MinidockerError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"{PROG}: {e.strerror or e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())
