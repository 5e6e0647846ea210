"""Helpers for the tests of ``minidocker-runtime``, the runtime's runc-like command line.

:func:`runtime_cli` runs one verb as a new process, as an engine would. Under an
engine the container's init ends up a child of the engine's *subreaper* (conmon,
containerd-shim) once ``create`` exits, and the subreaper reaps it. A test plays that
part with :class:`ContainerReaper`: this process becomes a subreaper, and a thread reaps
the processes of containers that end up its children (and only those: the tests' own
subprocesses are left to ``subprocess``, which waits for them itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading

#: ``python -m minidocker.runtime`` is ``minidocker-runtime`` (the console script)
RUNTIME = [sys.executable, "-m", "minidocker.runtime"]


def runtime_cli(root: str, *args, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """``minidocker-runtime --root ROOT ARGS...``; stdout and stderr as text.

    They are caught in files, not pipes: after ``create`` the container's init holds
    the stdio it was given, and a pipe would not reach end-of-file before it exits.
    """
    if kwargs.get("capture_output") is False or "stdout" in kwargs:
        kwargs.pop("capture_output", None)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(RUNTIME + ["--root", root] + [str(a) for a in args],
                              timeout=timeout, text=True, **kwargs)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run(RUNTIME + ["--root", root] + [str(a) for a in args], timeout=timeout,
                           stdin=kwargs.pop("stdin", subprocess.DEVNULL), stdout=out, stderr=err,
                           **kwargs)
        out.seek(0)
        err.seek(0)
        r.stdout, r.stderr = out.read().decode(), err.read().decode()
    return r


def _in_child_pid_namespace(pid: int) -> bool:
    """True for a process of some container: its ``NSpid`` line has more than one pid
    (one per PID namespace level), even while it is a zombie."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return len(line.split()) > 2
    except OSError:
        pass
    return False


def _children() -> list[int]:
    pids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


class ContainerReaper:
    """Make this process a child subreaper and reap the container processes
    re-parented to it, every 20 ms, until :meth:`stop`."""

    def __init__(self):
        from minidocker.kernel import capabilities
        capabilities.set_child_subreaper()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="container-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.reap()

    @staticmethod
    def reap() -> None:
        for pid in _children():
            if _in_child_pid_namespace(pid):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.reap()
