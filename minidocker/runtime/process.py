"""The last steps before the user's command runs: limits, identity, privileges, exec.

Shared by a container's PID 1 (:mod:`minidocker.runtime.create`) and by ``exec`` (:mod:`minidocker.runtime.exec`). The
order matters, and is runc's (``libcontainer/init_linux.go`` ``finalizeNamespace``):

1. rlimits, while we may still lower them (raising a *hard* limit needs
   CAP_SYS_RESOURCE, which we usually do not have, so the spec's limits are applied
   as given and a hard limit above ours is an error, never silently raised);
2. drop the bounding set while we still hold CAP_SETPCAP;
3. ``PR_SET_KEEPCAPS``, then setgroups/setgid/setuid: switching uid away from 0 would
   otherwise wipe the permitted set before we could set it;
4. the capability sets from the spec, then the ambient ones;
5. ``no_new_privs``;
6. ``execve``, after looking the command up on the *container's* ``$PATH``.
"""

from __future__ import annotations

import errno
import os
import resource

from ..kernel import capabilities

#: Exit codes, as Docker reports them: 126 "cannot invoke", 127 "not found".
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


class ExecError(Exception):
    """The command could not be executed: ``code`` is 126 or 127, the message is
    Docker's wording (``exec: "foo": executable file not found in $PATH``)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def exit_code_of(status: int) -> int:
    """A ``waitpid`` status as a shell (and Docker) reports it: the exit code, or
    128 + N when killed by signal N (137 for SIGKILL, e.g. by the OOM killer)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


# --------------------------------------------------------------------------- 1. rlimits
def apply_rlimits(rlimits) -> None:
    """Set each ``{"type": "RLIMIT_NOFILE", "soft": N, "hard": M}`` of the spec."""
    for item in rlimits or ():
        name = item["type"]
        number = getattr(resource, name, None)
        if number is None:
            raise ValueError(f"unknown rlimit {name}")
        soft, hard = int(item["soft"]), int(item["hard"])
        _, current_hard = resource.getrlimit(number)
        if current_hard != resource.RLIM_INFINITY and (hard > current_hard or hard < 0):
            raise PermissionError(errno.EPERM, f"setrlimit {name}: cannot raise the hard limit "
                                               f"from {current_hard} to {hard} (needs CAP_SYS_RESOURCE)")
        resource.setrlimit(number, (soft, hard))


# --------------------------------------------------------------------------- 2-5. identity
def become_user(user: dict, caps: dict | None, no_new_privileges: bool) -> None:
    """Take on ``process.user`` and ``process.capabilities`` of the spec, for good.

    ``caps`` is ``{"bounding": [...], "effective": [...], "permitted": [...],
    "inheritable": [...], "ambient": [...]}``; None keeps the current sets. Capabilities
    this process does not hold itself are skipped (nobody can grant what it lacks).
    """
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    held = capabilities.bounding_set()
    have = lambda names: [n for n in names or () if held >> capabilities.number_of(n) & 1]  # noqa: E731
    if caps is not None:
        capabilities.drop_bounding(have(caps.get("bounding")))
    capabilities.set_keepcaps(True)
    # Supplementary groups first: after setuid we could no longer change them.
    os.setgroups([int(g) for g in user.get("additionalGids", [])])
    os.setgid(gid)
    os.setuid(uid)
    capabilities.set_keepcaps(False)
    if caps is not None:
        capabilities.capset(capabilities.mask_of(have(caps.get("effective"))),
                            capabilities.mask_of(have(caps.get("permitted"))),
                            capabilities.mask_of(have(caps.get("inheritable"))))
        # The kernel raises an ambient capability only if it is both permitted and
        # inheritable; runc 1.1 skips the others with a warning (runc's own `runc spec`
        # lists ambient capabilities but, since CVE-2022-29162, no inheritable ones).
        allowed = set(caps.get("permitted") or ()) & set(caps.get("inheritable") or ())
        capabilities.set_ambient([c for c in have(caps.get("ambient")) if c in allowed])
    if no_new_privileges:
        capabilities.set_no_new_privs()


def change_dir(cwd: str, before_user: bool) -> bool:
    """``process.cwd``, the way runc 1.1 enters it: first while still root (the new
    user may not be able to pass through a parent directory, say a root of mode
    0700), and, if root was refused (a volume only the new user may enter), once more
    after :func:`become_user`. Returns True when it is done."""
    try:
        os.chdir(cwd)
        return True
    except PermissionError:
        if before_user:
            return False
        raise


# --------------------------------------------------------------------------- 6. exec
def env_dict(env) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> a dict (a later duplicate wins, as in Docker)."""
    out = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if key:
            out[key] = value if sep else ""
    return out


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """The home directory of ``uid`` in the container's ``/etc/passwd``, else ``/``.
    runc sets ``HOME`` from it when the spec's environment has none."""
    try:
        with open(passwd) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def find_executable(name: str, env: dict[str, str]) -> str:
    """Where ``name`` is, the way Go's ``exec.LookPath`` (used by runc) finds it.

    A name with a ``/`` is used as is; otherwise each directory of the container's
    ``$PATH`` is tried. The first regular file with an execute bit wins.
    """
    if "/" in name:
        _check_executable(name, name)
        return name
    denied = None
    for directory in (env.get("PATH") or "").split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            _check_executable(name, candidate)
            return candidate
        except ExecError as e:
            if e.code == EXIT_CANNOT_INVOKE and denied is None:
                denied = e
    raise ExecError(EXIT_NOT_FOUND, f'exec: "{name}": executable file not found in $PATH')


def _check_executable(name: str, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as e:
        code = EXIT_NOT_FOUND if e.errno in (errno.ENOENT, errno.ENOTDIR) else EXIT_CANNOT_INVOKE
        raise ExecError(code, f'exec: "{name}": stat {path}: {os.strerror(e.errno).lower()}') from None
    if not os.path.isfile(path) or not st.st_mode & 0o111:
        raise ExecError(EXIT_CANNOT_INVOKE, f'exec: "{name}": permission denied')


def exec_command(args: list[str], env: dict[str, str]) -> None:
    """Replace this process with the command; returns only by raising :class:`ExecError`.

    ``execve`` keeps everything set up so far (namespaces, root, ids, capabilities,
    cgroup, open stdio) and replaces only the program: the command *is* the container.
    """
    path = find_executable(args[0], env)
    try:
        os.execve(path, args, env)
    except OSError as e:
        code = EXIT_NOT_FOUND if e.errno == errno.ENOENT else EXIT_CANNOT_INVOKE
        raise ExecError(code, f'exec: "{args[0]}": {os.strerror(e.errno).lower()}') from None
