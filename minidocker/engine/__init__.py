"""minidocker.engine: containers and their lifecycle, built on the runtime, image store and
network. One short function per verb, as in bocker: the whole engine fits in a reader's head.

Read :mod:`.containers` (records on disk, create/resolve/remove), then :mod:`.monitor`
(the process that runs one container from start to exit), then :mod:`.lifecycle`
(start, stop, kill, wait, exec, logs, top).
"""
