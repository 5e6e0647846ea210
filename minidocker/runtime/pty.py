"""Pseudo-terminals: what ``docker run -t`` gives the container, and how we talk to it.

A pty is a pair: the *slave* end looks like a real terminal to the program (it can be
put in raw mode, has a window size, delivers Ctrl-C as SIGINT to its foreground
process group); whatever the program writes there can be read from the *master* end,
and what is written to the master arrives as typed input.

The container opens ``/dev/pts/ptmx`` of its *own* devpts instance (mounted with
``newinstance``), so its terminal is ``/dev/pts/0`` inside and the host's ptys stay
invisible. The master end is then passed to the runtime over a unix socket
(``SCM_RIGHTS``), which copies bytes between it and the user's terminal: that is
:func:`relay_terminal`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
import tty

TIOCGPTN = 0x80045430     # get the pty number of a master (-> /dev/pts/N)
TIOCSPTLCK = 0x40045431   # lock/unlock the slave; a new pty starts locked


def open_pty_in(devpts: str = "/dev/pts") -> tuple[int, str]:
    """Open a new pty from the devpts instance at ``devpts``; return (master fd, slave path).

    This is ``posix_openpt`` + ``unlockpt`` + ``ptsname`` by hand, so that the pty comes
    from the container's own devpts instead of the host's ``/dev/ptmx``.
    """
    master = os.open(os.path.join(devpts, "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("i", fcntl.ioctl(master, TIOCGPTN, struct.pack("i", 0)))[0]
    return master, os.path.join(devpts, str(number))


def attach_to_terminal(slave_path: str) -> None:
    """Make the pty slave our controlling terminal and our stdin, stdout and stderr.

    A process gets a controlling terminal with ``TIOCSCTTY`` only as the leader of a
    session without one: hence ``setsid()`` first (done by the caller). From then on
    Ctrl-C typed into the terminal is SIGINT for the container's foreground processes.
    """
    slave = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def get_window_size(fd: int) -> bytes | None:
    """The terminal's ``struct winsize`` (rows, cols, xpixel, ypixel), or None."""
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def set_window_size(fd: int, winsize: bytes | None) -> None:
    """Give the pty behind ``fd`` a window size; its foreground process gets SIGWINCH."""
    if winsize:
        try:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, winsize)
        except OSError:
            pass


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may take only part of it). A reader
    that has gone away (EPIPE: ``minidocker run ... | head -1``) is no error: the rest
    is dropped, and the container goes on."""
    while data:
        try:
            data = data[os.write(fd, data):]
        except BrokenPipeError:
            return


def relay_terminal(master_fd: int, stdin_fd: int | None = 0, stdout_fd: int | None = 1,
                   forward_stdin: bool = True, on_output=None) -> None:
    """Copy between the user's terminal and the container's pty until the container
    closes it. The one terminal relay: ``runtime`` run and exec, and the engine's
    monitor (which also logs the output) use it.

    * the user's terminal goes into *raw* mode (when ``forward_stdin``): keys (Ctrl-C
      too) travel as bytes to the container's terminal, whose line discipline turns
      them into signals and echo; our terminal must not do that a second time. It is
      restored at the end. Raw mode starts at once (``TCSANOW``): ``TCSAFLUSH`` would
      throw away what the user typed ahead.
    * window size: copied now and on every SIGWINCH (the user resized the window).
    * the end of our input (a pipe) becomes the terminal's EOF character (Ctrl-D), sent
      once: a shell reading the terminal then sees the end of its input, as it would
      from a user typing it.
    * the end: reading the master fails with EIO once every slave fd is closed, i.e.
      the container's processes have exited.

    ``stdin_fd`` / ``stdout_fd`` None: no user on that side (a detached container).
    ``on_output(data)`` gets every chunk the container writes, too.
    """
    terminal = stdin_fd is not None and os.isatty(stdin_fd)
    saved = None
    if terminal:
        set_window_size(master_fd, get_window_size(stdin_fd))
        if forward_stdin:
            # Only when our keys go to the container (docker run -it); with -t alone,
            # Ctrl-C stays a signal to us, which we pass on.
            saved = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd, termios.TCSANOW)
    previous_winch = None
    try:
        if terminal:
            def follow_resize(_signum, _frame):
                set_window_size(master_fd, get_window_size(stdin_fd))
            try:
                previous_winch = signal.signal(signal.SIGWINCH, follow_resize)
            except ValueError:
                pass  # not the main thread: no resize following
        _copy_loop(master_fd, stdin_fd if forward_stdin else None, stdout_fd, on_output)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)


def _copy_loop(master_fd: int, stdin_fd: int | None, stdout_fd: int | None, on_output) -> None:
    readers = [master_fd] + ([stdin_fd] if stdin_fd is not None else [])
    while True:
        ready, _, _ = select.select(readers, [], [])
        if master_fd in ready:
            try:
                data = os.read(master_fd, 65536)
            except OSError as e:
                if e.errno == errno.EIO:  # no slave left open: the container is gone
                    return
                raise
            if not data:
                return
            if on_output is not None:
                on_output(data)
            if stdout_fd is not None:
                write_all(stdout_fd, data)
        if stdin_fd is not None and stdin_fd in ready:
            data = os.read(stdin_fd, 65536)
            if not data:
                # End of our input (a pipe): send the terminal's EOF character once.
                write_all(master_fd, b"\x04")
                readers.remove(stdin_fd)
                stdin_fd = None
                continue
            write_all(master_fd, data)
