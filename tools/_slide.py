"""What every one-slide tool in ``tools/`` shares: its ``--help``, its errors, and exec.

Each tool is a thin command over :mod:`minidocker.kernel`: it changes something about
the *current* process (a new namespace, a new hostname, an id map) and then replaces
itself with the command you asked for, exactly like ``unshare(1)`` does. The command
inherits the changes, because ``execve(2)`` keeps a process's namespaces, ids and
mounts; only the program it runs is new.

Only the standard library is used here, so the tools run from a plain checkout, by any
user, with the system's ``python3``.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from minidocker.kernel import syscalls

DEFAULT_COMMAND = ["/bin/sh"]

#: Docker's exit codes, used here too: 125 when the tool itself fails, 126 when the
#: command cannot be invoked, 127 when it is not found.
EXIT_TOOL_FAILED = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


class ToolError(Exception):
    """A one-line error the tool prints as ``NAME: message`` before exiting 125."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option exits 125 (Docker's code for "the tool failed"),
    so that 1-124 stay free for the command's own exit codes."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_TOOL_FAILED, f"{self.prog}: {message}\n")


def make_parser(prog: str, slide: str, summary: str, kernel: str, try_this: str) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` teaches: which slide, what the kernel does,
    and the transcript to try. ``COMMAND [ARGS...]`` is everything after the options."""
    description = (f"{summary}\n\nSlide: \"{slide}\" of the talk.\n\n"
                   f"What the kernel does:\n{_indent(kernel)}\n\nTry it:\n{_indent(try_this)}")
    parser = _Parser(prog=prog, description=description,
                      usage=f"{prog} [options] [COMMAND [ARGS...]]",
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]",
                        help=f"what to run inside (default: {' '.join(DEFAULT_COMMAND)})")
    return parser


def _indent(text: str) -> str:
    lines = text.strip("\n").splitlines()
    return "\n".join("  " + line if line.strip() else "" for line in lines)


def command_of(args: argparse.Namespace) -> list[str]:
    """The command to run, ``/bin/sh`` when none was given (as ``unshare(1)``'s $SHELL)."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    return command or list(DEFAULT_COMMAND)


def exec_command(prog: str, command: list[str]) -> None:
    """Replace this process with ``command`` (searched on ``$PATH``); never returns.

    ``execvp`` keeps the process: same PID, same namespaces, same ids and mounts. That
    is why every tool first changes *itself* and then execs: the command inherits it.
    """
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        print(f"{prog}: {command[0]}: command not found", file=sys.stderr)
        os._exit(EXIT_NOT_FOUND)
    except OSError as e:
        print(f"{prog}: {command[0]}: {e.strerror}", file=sys.stderr)
        os._exit(EXIT_CANNOT_INVOKE)


#: What usually makes a namespace call fail with EPERM ("Operation not permitted").
NEEDS_ROOT = "this needs CAP_SYS_ADMIN, i.e. root; only a user namespace can be made without it"


def run(prog: str, main, eperm_hint: str = NEEDS_ROOT) -> None:
    """Call ``main()``, turning a failed step into a one-line error and exit code 125.

    A kernel refusal arrives as an :class:`OSError` whose message names the call
    (``unshare(0x20000): Operation not permitted``); for EPERM we add what usually
    causes it (``eperm_hint``).
    """
    try:
        main()
    except (ToolError, OSError) as e:
        _die(prog, error_message(e, eperm_hint))
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)


def error_message(error: Exception, eperm_hint: str = NEEDS_ROOT) -> str:
    """One line for the user: the failed call and the kernel's reason, plus a hint."""
    if not isinstance(error, OSError):
        return str(error)
    message = error.strerror or str(error)
    if error.errno == errno.EPERM and eperm_hint:
        message += f" ({eperm_hint})"
    return message


def _die(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(EXIT_TOOL_FAILED)


# --------------------------------------------------------------------------- fork + wait
#: Signals the parent passes on to the child it waits for. SIGINT and SIGQUIT are typed
#: at a terminal (Ctrl-C, Ctrl-\): there the terminal sends them to the child itself
#: (it is the foreground process group), so they are passed on only without a terminal.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)


def fork_and_wait(child) -> int:
    """Fork; the child runs ``child()`` (which should exec and never return); the parent
    passes signals on to it, waits, and returns its exit status the way a shell (and
    Docker) reports it: the exit code, or 128 + the signal number if it was killed.
    """
    owns_terminal = _in_foreground_of_terminal()
    pid = os.fork()
    if pid == 0:
        try:
            _restore_default_signals()
            # If the tool dies (even of SIGKILL, which it cannot pass on), so does the child.
            syscalls.set_parent_death_signal(signal.SIGKILL)
            if owns_terminal:
                _take_terminal()
            child()
        except BaseException as e:  # the child must never return into the parent's code
            print(f"{os.path.basename(sys.argv[0])}: {error_message(e)}", file=sys.stderr)
            os._exit(EXIT_TOOL_FAILED)
        os._exit(0)
    _forward_signals_to(pid, owns_terminal)
    status = _wait_for(pid)
    if owns_terminal:
        _give_terminal_to(os.getpgrp())
    return status


def _in_foreground_of_terminal() -> bool:
    """True when stdin is a terminal and our process group is the one reading from it."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _take_terminal() -> None:
    """Make the child its own process group, in the terminal's foreground.

    A shell that is PID 1 of a new PID namespace cannot see the process group it was
    started in (it lives outside the namespace): given that group, an interactive shell
    fails at exit with "Cannot set tty process group (No such process)". Its own group is
    one it can see; Ctrl-C from the terminal then goes to it alone, not to the tool.
    """
    os.setpgid(0, 0)
    _give_terminal_to(os.getpgrp())


def _give_terminal_to(pgrp: int) -> None:
    # tcsetpgrp from a background group stops the caller with SIGTTOU unless ignored.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(0, pgrp)
    except OSError:
        pass  # the terminal is gone (hangup): nothing to give back
    finally:
        signal.signal(signal.SIGTTOU, previous)


def _restore_default_signals() -> None:
    for sig in FORWARDED_SIGNALS + TERMINAL_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def _forward_signals_to(pid: int, owns_terminal: bool) -> None:
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass  # it has just exited; the wait below will tell
    signals = FORWARDED_SIGNALS if owns_terminal else FORWARDED_SIGNALS + TERMINAL_SIGNALS
    for sig in signals:
        signal.signal(sig, forward)


def _wait_for(pid: int) -> int:
    while True:
        # os.waitpid retries by itself when a forwarded signal interrupts it (PEP 475).
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
