"""``minidocker attach``: connect our terminal to a running container's stdin and output.

A detached container's stdin and output are held by its monitor, which listens on an
attach socket (:mod:`minidocker.engine.attach`); ``attach`` is one more client of it,
like the Engine API's ``POST /containers/{id}/attach``. With a tty our terminal goes
into raw mode and its window size follows ours; ``Ctrl-P Ctrl-Q`` detaches and leaves
the container running. The exit code is the container's, as with ``docker attach``.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import signal
import struct
import sys
import termios

import click


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True, show_default=True,
              help="Proxy all received signals to the process")
@click.option("--detach-keys", default="ctrl-p,ctrl-q", show_default=True,
              help="Override the key sequence for detaching a container")
@click.argument("container")
def attach(no_stdin, sig_proxy, detach_keys, container):
    """Attach local standard input, output, and error streams to a running container."""
    from ..engine import attach as hub
    from ..engine import lifecycle
    from ..engine.containers import resolve
    from ..errors import Conflict, MinidockerError
    c = lifecycle.reconcile(resolve(container))
    if not c.state["State"]["Running"]:
        raise Conflict("You cannot attach to a stopped container, start it first")
    if c.state["State"].get("Paused"):
        raise Conflict("You cannot attach to a paused container, unpause it first")
    try:
        keys = hub.parse_detach_keys(detach_keys)
    except ValueError as e:
        raise MinidockerError(str(e)) from None
    tty = bool(c.state["Config"].get("Tty"))
    stdin = not no_stdin and bool(c.state["Config"].get("OpenStdin"))
    sock = hub.connect(c, stdin=stdin, stdout=True, stderr=True)
    saved = previous_winch = None
    previous = {}
    if tty and os.isatty(0):
        def resize(*_):
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            try:
                hub.send_resize(sock, rows, cols)
            except OSError:
                pass
        resize()
        previous_winch = signal.signal(signal.SIGWINCH, resize)
        if stdin:
            import tty as tty_mod
            saved = termios.tcgetattr(0)
            tty_mod.setraw(0, termios.TCSANOW)
    elif sig_proxy:
        def forward(signum, _frame):
            try:
                lifecycle.kill(c.reload(), signum)
            except MinidockerError:
                pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            previous[sig] = signal.signal(sig, forward)
    detached = False
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    if stdin:
        sel.register(0, selectors.EVENT_READ)
    buf = bytearray()
    held = b""
    try:
        while not detached:
            for key, _ in sel.select():
                if key.fileobj is sock:
                    data = sock.recv(65536)
                    if not data:
                        raise EOFError
                    buf += data
                    while len(buf) >= hub.HEADER.size:
                        stream, size = hub.HEADER.unpack_from(buf)
                        if len(buf) < hub.HEADER.size + size:
                            break
                        payload = bytes(buf[hub.HEADER.size:hub.HEADER.size + size])
                        del buf[:hub.HEADER.size + size]
                        fd = 2 if stream == hub.STDERR else 1
                        while payload:
                            payload = payload[os.write(fd, payload):]
                else:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        hub.send_close_stdin(sock)
                        continue
                    data, held, detached = hub.scan_detach(held + data, keys)
                    if data:
                        sock.sendall(hub.frame(hub.STDIN, data))
    except EOFError:
        pass
    finally:
        sel.close()
        sock.close()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if detached:
        return
    code = lifecycle.wait_condition(c, "not-running")
    sys.exit(code)
