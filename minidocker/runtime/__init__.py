"""minidocker.runtime: run ONE container from an OCI runtime bundle (what runc does).

The engine writes a bundle (``config.json`` + ``rootfs/``, see :mod:`.spec`) and calls::

    proc = runtime.create(bundle_dir, container_id, stdin=0, stdout=1, stderr=2)
    # namespaces exist, PID 1 is blocked before exec: proc.pid, proc.master_fd
    runtime.start(proc)        # exec the command
    code = proc.wait()         # its exit code; 128+N if killed by signal N; 126/127

Read in this order: :mod:`.spec` (the config), :mod:`.create` (the processes),
:mod:`.resources` (the cgroup), :mod:`.rootfs_setup` (the mounts), :mod:`.process` (user,
capabilities, exec), :mod:`.seccomp` (the system call filter), :mod:`.pty`,
:mod:`.exec` (``docker exec``). ``python -m minidocker.runtime spec|run`` runs a
bundle on its own, like ``runc spec`` / ``runc run``. Only the standard library is used.
"""

from . import spec
from .create import ContainerProcess, create, start
from .exec import exec_process, spawn_in
from .pty import relay_terminal

__all__ = ["spec", "create", "start", "ContainerProcess", "exec_process", "spawn_in",
           "relay_terminal"]
