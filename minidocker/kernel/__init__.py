"""minidocker.kernel: the Linux features a container is made of, one small module each.

Read bottom-up: :mod:`.syscalls` (the raw calls), :mod:`.namespaces`, :mod:`.mounts`,
:mod:`.userns`, :mod:`.cgroups`, :mod:`.capabilities`, :mod:`.netdev` (``lo`` up),
:mod:`.processes` (is a process alive, and still the same one?). Only the standard library is used
here, so the tools in ``tools/`` run from a plain checkout.
"""
