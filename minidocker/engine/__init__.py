"""minidocker.engine: containers and their lifecycle, built on the runtime, image store and
network. One short function per verb, as in bocker: the whole engine fits in a reader's head.

Read :mod:`.containers` (records on disk, create/resolve/remove), then :mod:`.monitor`
(the process that runs one container from start to exit), then :mod:`.lifecycle`
(start, stop, kill, wait, exec, logs, top). What the monitor sets up: :mod:`.overlay`
(the overlay, with the container's init layer), :mod:`.etc_files` (hostname, hosts,
resolv.conf; who ``-u USER`` is) and :mod:`.bundle` (the OCI
``config.json``: capabilities, the seccomp filter, cgroup ``/minidocker/<id>``).
``network connect``/``disconnect`` of a container: :mod:`.endpoints`.
"""
