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

import array
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


class ConsoleListener:
    """The other side, what conmon does: a unix socket to name in ``--console-socket``,
    and :meth:`receive` to take the pty master that the runtime sends over it.

    The socket lives in a fresh directory under /tmp: a unix socket's path must fit in
    108 bytes, which a data root deep in the file system might not.
    """

    def __init__(self):
        self.directory = os.path.join(os.environ.get("TMPDIR") or "/tmp",
                                      f"minidocker-console-{os.urandom(6).hex()}")
        os.mkdir(self.directory, 0o700)
        self.path = os.path.join(self.directory, "console.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self, timeout: float = 10.0) -> int:
        """Accept the runtime's connection and return the fd it passed (exactly one)."""
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            _, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, kind, data in ancdata:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise InvalidInput(f"console socket: expected one fd, got {len(fds)}")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        for path, remove in ((self.path, os.unlink), (self.directory, os.rmdir)):
            try:
                remove(path)
            except OSError:
                pass
