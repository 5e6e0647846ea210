"""A Dockerfile's text -> a list of :class:`Instruction`.

The hard part of reading a Dockerfile -- line continuations, comments in the middle of a
continued line, heredocs, the JSON ("exec") form, the ``escape`` directive -- is done by
Docker's own parser: the ``dockerfile`` package is BuildKit's Go parser compiled into a
Python extension. What we add here:

- the *parser directives* (``# escape=``` at the very top): we need the escape character
  ourselves for variable expansion (:mod:`.expand`), which happens later;
- errors that name the Dockerfile and the line;
- the flags (``--chown=0:0``) split into a dict, with the flags each instruction allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dockerfile

from . import BuildError, at_line

KNOWN = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
         "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
         "WORKDIR"}

#: flags each instruction accepts (Docker rejects any other with "Unknown flag")
ALLOWED_FLAGS = {
    "FROM": {"platform"},
    "COPY": {"chown", "chmod", "from", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "RUN": {"network", "mount", "security"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}

# '# directive=value' -- only in the leading comment block of the file (Docker's rule:
# directives stop at the first blank line, non-directive comment or instruction).
DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


@dataclass
class Instruction:
    """One Dockerfile instruction, as Docker's parser saw it."""

    keyword: str                     # "RUN", upper case
    args: list[str]                  # the words after the keyword (flags removed)
    flags: dict[str, str | bool]     # {"chown": "1:1"}
    json: bool                       # written in exec (JSON array) form
    original: str                    # the text, continuations joined
    line: int                        # first line in the Dockerfile
    path: str                        # the Dockerfile, for error messages
    heredocs: list[tuple[str, str]] = field(default_factory=list)  # (name, content)
    trigger: "Instruction | None" = None   # for ONBUILD: the instruction it registers

    def error(self, message: str) -> BuildError:
        return at_line(self.path, self.line, message)

    def display(self) -> str:
        """The step line Docker prints: ``Step 2/5 : RUN echo hi``."""
        return self.original.split("\n", 1)[0] if self.heredocs else self.original


@dataclass
class Dockerfile:
    path: str
    escape: str
    instructions: list[Instruction]


def parse_directives(text: str) -> dict[str, str]:
    """The parser directives at the top of the file, e.g. ``{"escape": "`"}``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = DIRECTIVE.match(line.strip())
        if not match:
            break
        found[match.group(1).lower()] = match.group(2)
    return found


def parse_flags(keyword: str, raw_flags, path: str, line: int) -> dict[str, str | bool]:
    flags: dict[str, str | bool] = {}
    allowed = ALLOWED_FLAGS.get(keyword, set())
    for raw in raw_flags:
        name, sep, value = raw[2:].partition("=")
        if name not in allowed:
            raise at_line(path, line, f"Unknown flag: {name}")
        flags[name] = value if sep else True
    return flags


def _error_line(text: str, message: str) -> int:
    """Docker's parser says *what* is wrong but not *where*: find the first prefix of
    the file that fails the same way."""
    lines = text.splitlines(keepends=True)
    for n in range(1, len(lines) + 1):
        try:
            dockerfile.parse_string("".join(lines[:n]))
        except dockerfile.GoParseError as e:
            if str(e) == message:
                return n
    return 1


def _instruction(cmd, path: str) -> Instruction:
    keyword = cmd.cmd.upper()
    if keyword not in KNOWN:
        raise at_line(path, cmd.start_line, f"unknown instruction: {cmd.cmd}")
    trigger = None
    if keyword == "ONBUILD":
        sub = (cmd.sub_cmd or "").upper()
        if not sub:
            raise at_line(path, cmd.start_line, "ONBUILD requires at least one argument")
        if sub in ("ONBUILD", "FROM", "MAINTAINER"):
            raise at_line(path, cmd.start_line, f"{sub} isn't allowed as an ONBUILD trigger")
        if sub not in KNOWN:
            raise at_line(path, cmd.start_line, f"unknown instruction: {cmd.sub_cmd}")
        # the trigger is stored as text in the image (config.OnBuild) and parsed again
        # by the build that uses this image as its base
        text = cmd.original.split(None, 1)[1]
        trigger = Instruction(sub, list(cmd.value), {}, cmd.json, text, cmd.start_line, path,
                              [(h.name, h.content) for h in cmd.heredocs])
    if not cmd.value and not cmd.json and keyword not in ("CMD", "ENTRYPOINT", "RUN"):
        raise at_line(path, cmd.start_line, f"{keyword} requires at least one argument")
    flags = parse_flags(keyword, cmd.flags, path, cmd.start_line)
    return Instruction(keyword, list(cmd.value), flags, cmd.json, cmd.original,
                       cmd.start_line, path, [(h.name, h.content) for h in cmd.heredocs],
                       trigger)


def parse_text(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; ``path`` is only used in error messages."""
    directives = parse_directives(text)
    escape = directives.get("escape", "\\")
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        message = str(e)
        if message == "file with no instructions":
            raise BuildError(f"{path}: the Dockerfile cannot be empty") from None
        raise at_line(path, _error_line(text, message), message) from None
    return Dockerfile(path, escape, [_instruction(cmd, path) for cmd in commands])


def parse_instruction_text(text: str, path: str, line: int) -> Instruction:
    """Parse one instruction given as text (an ONBUILD trigger from a base image)."""
    commands = dockerfile.parse_string(text + "\n")
    inst = _instruction(commands[0], path)
    inst.line = line
    return inst


def parse_file(path: str) -> Dockerfile:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise BuildError(f"Cannot locate specified Dockerfile: {path}") from None
    except UnicodeDecodeError:
        raise BuildError(f"{path}: the Dockerfile is not UTF-8 text") from None
    return parse_text(text, path)
