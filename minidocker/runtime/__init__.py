"""minidocker.runtime: run ONE container from an OCI runtime bundle (what runc does).

The engine writes a bundle (``config.json`` + ``rootfs/``, see :mod:`.spec`) and calls::

    proc = runtime.create(bundle_dir, container_id, stdin=0, stdout=1, stderr=2)
    # namespaces exist, PID 1 is blocked before exec: proc.pid, proc.master_fd
    runtime.start(proc)        # exec the command
    code = proc.wait()         # its exit code; 128+N if killed by signal N; 126/127

Read in this order: :mod:`.spec` (the config), :mod:`.create` (the processes),
:mod:`.resources` (the cgroup), :mod:`.rootfs_setup` (the mounts), :mod:`.process` (user,
capabilities, exec), :mod:`.seccomp` (the system call filter), :mod:`.pty`,
:mod:`.exec` (``docker exec``).

The same code behind runc's command line, for any engine to drive (podman through
conmon, ``minidocker run --runtime minidocker-runtime``): ``minidocker-runtime`` or
``python -m minidocker.runtime`` with ``create``, ``start``, ``state``, ``kill``,
``delete``, ``pause``, ``resume``, ``ps``, ``list``, ``exec``, ``spec``, ``run``; read
:mod:`.cli` (the verbs), :mod:`.state` (what one verb leaves for the next) and
:mod:`.console` (``--console-socket``). Only the standard library is used.
"""

from . import spec
from .create import ContainerProcess, create, start
from .exec import exec_process, spawn_in
from .pty import relay_terminal

__all__ = ["spec", "create", "start", "ContainerProcess", "exec_process", "spawn_in",
           "relay_terminal"]
