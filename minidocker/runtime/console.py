"""``--console-socket``: handing the container's terminal to whoever will relay it.

With ``process.terminal`` true, the container's stdio is a pty opened *inside* the
container (from its own devpts). ``runc create`` exits at once, so it cannot copy bytes
between that pty and the user; the engine's monitor (conmon, containerd-shim) does. The
monitor listens on a unix socket and names it with ``--console-socket PATH``; the
runtime connects and sends the pty's *master* fd in one ``sendmsg`` with an
``SCM_RIGHTS`` control message, the kernel's way of passing an open file to another
process (``unix(7)``): the receiver gets a new fd for the same open file. The bytes sent
along are the pty's name, which conmon logs and ignores. Exactly one fd, one message,
then the runtime closes its copies: from now on only the monitor holds the master.
"""

from __future__ import annotations

import os
import socket
import stat

from ..errors import InvalidInput


def check_console_socket(path: str) -> str:
    """Fail early, before anything is created, if ``path`` is not a unix socket."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidInput(f"console socket {path}: no such file or directory") from None
    if not stat.S_ISSOCK(mode):
        raise InvalidInput(f"console socket {path}: not a unix socket")
    return os.path.abspath(path)


def send_console(path: str, master_fd: int, name: str = "/dev/pts/0") -> None:
    """Connect to the unix socket at ``path`` and pass ``master_fd`` over it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError as e:
            raise InvalidInput(f"console socket {path}: {e.strerror}") from None
        socket.send_fds(sock, [name.encode()], [master_fd])
