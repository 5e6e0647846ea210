"""The build context: the directory ``docker build DIR`` sends to the daemon, minus what
``DIR/.dockerignore`` excludes.

Docker's client tars the context up and streams it to the daemon; COPY and ADD can only
see what was sent. We read the directory in place instead of making the tar, but apply
the same rules, so that an ignored file is exactly as invisible as under Docker, and we
print the size the tar *would* have (``Sending build context to Docker daemon  2.048kB``).

.dockerignore rules (Docker's ``patternmatcher``):

- one pattern per line; blank lines and lines starting with ``#`` are skipped;
- each pattern is cleaned like a path (``./a//b/`` -> ``a/b``), a leading ``/`` dropped;
- ``*`` matches within one path element, ``?`` one character, ``[a-z]`` a class,
  ``\\`` escapes; ``**`` matches any number of directories (also none);
- a pattern that matches a directory excludes everything below it;
- ``!pattern`` re-includes; the *last* matching line decides.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass

from . import BuildError


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean``: no ``.``, no ``..`` that can be resolved, no ``//``."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _class_to_regex(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` class starting at ``pattern[i] == '['``; Go negates with ``^``."""
    out = "["
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        out += "^"
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            ch = pattern[i]
        out += re.escape(ch) if ch != "-" else "-"
        i += 1
    if i >= len(pattern):
        raise BuildError(f"syntax error in pattern: {pattern}")
    return out + "]", i + 1


def _glob_to_regex(pattern: str, double_star: bool) -> str:
    """Go's ``filepath.Match`` syntax as a regular expression: ``*`` and ``?`` never
    cross ``/``, ``[...]`` is a class, ``\\`` escapes. With ``double_star`` (Docker's
    .dockerignore), ``**`` also matches any number of directories."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if double_star and pattern[i + 1:i + 2] == "*":
                i += 2
                if pattern[i:i + 1] == "/":
                    i += 1          # '**/' is the same as '**'
                out += ".*" if i >= len(pattern) else "(.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            regex, i = _class_to_regex(pattern, i)
            out += regex
            continue
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return out


def ignore_pattern_to_regex(pattern: str) -> re.Pattern:
    """One cleaned .dockerignore pattern as an anchored regular expression."""
    return re.compile("^" + _glob_to_regex(pattern, double_star=True) + "$", re.S)


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` (used for COPY's wildcards): ``*`` never crosses ``/``."""
    return re.fullmatch(_glob_to_regex(pattern, double_star=False), name, re.S) is not None


def has_wildcards(path: str) -> bool:
    return any(ch in path for ch in "*?[")


@dataclass
class IgnorePattern:
    text: str
    exclusion: bool        # a '!' line: re-include what matches
    regex: re.Pattern
    depth: int             # how many path elements the pattern has


def parse_dockerignore(text: str) -> list[IgnorePattern]:
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = False
        if line.startswith("!"):
            if len(line) == 1:
                raise BuildError('illegal exclusion pattern: "!"')
            exclusion = True
            line = line[1:].strip()
        line = clean_path(line)
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
        patterns.append(IgnorePattern(line, exclusion, ignore_pattern_to_regex(line),
                                      len(line.split("/"))))
    return patterns


def is_ignored(patterns: list[IgnorePattern], relpath: str) -> bool:
    """Does .dockerignore exclude ``relpath`` (relative, '/'-separated)?

    Each pattern is tried on the path and, failing that, on the path's leading
    directories (so ``build`` also excludes ``build/out.o``). The last match wins."""
    ignored = False
    parent_dirs = posixpath.dirname(relpath).split("/") if "/" in relpath else []
    for pattern in patterns:
        if pattern.exclusion != ignored:
            continue  # an exclusion can only flip an ignored path back, and vice versa
        match = bool(pattern.regex.match(relpath))
        if not match and parent_dirs and pattern.depth <= len(parent_dirs):
            match = bool(pattern.regex.match("/".join(parent_dirs[:pattern.depth])))
        if match:
            ignored = not pattern.exclusion
    return ignored


class BuildContext:
    """The context directory as COPY and ADD see it."""

    def __init__(self, root: str, dockerfile_path: str | None = None):
        if not os.path.exists(root):
            raise BuildError(f"unable to prepare context: path {root!r} not found")
        if not os.path.isdir(root):
            raise BuildError(f"unable to prepare context: context must be a directory: {root}")
        self.root = os.path.realpath(root)
        ignore_file = os.path.join(self.root, ".dockerignore")
        text = ""
        if os.path.isfile(ignore_file):
            with open(ignore_file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        self.patterns = parse_dockerignore(text)
        self.has_exceptions = any(p.exclusion for p in self.patterns)
        self.files = self._walk()
        self.file_set = set(self.files)

    def ignored(self, relpath: str) -> bool:
        return bool(self.patterns) and is_ignored(self.patterns, relpath)

    def _walk(self) -> list[str]:
        """Every path of the context that is sent (relative, sorted, dirs included).

        An excluded directory is not entered unless some ``!`` line could re-include
        something below it (Docker's walker does the same)."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir
            keep_dirs = []
            for name in sorted(dirnames):
                rel = posixpath.join(rel_dir, name) if rel_dir else name
                ignored = self.ignored(rel)
                if not ignored:
                    found.append(rel)
                if not ignored or self.has_exceptions:
                    keep_dirs.append(name)
            dirnames[:] = keep_dirs
            for name in sorted(filenames):
                rel = posixpath.join(rel_dir, name) if rel_dir else name
                if not self.ignored(rel):
                    found.append(rel)
        return sorted(found)

    def tar_size(self) -> int:
        """Bytes of the (uncompressed) tar the Docker client would send: a 512-byte
        header per entry, file data padded to 512, and two zero blocks at the end."""
        size = 1024
        for rel in self.files:
            st = os.lstat(os.path.join(self.root, rel))
            size += 512
            if len(rel) > 99:
                size += 1024          # a PAX header carries the long name
            if stat.S_ISREG(st.st_mode):
                size += (st.st_size + 511) // 512 * 512
        return size

    def path_of(self, src: str, line_error) -> str:
        """The host path of context path ``src``; a path that leaves the context is an
        error (the daemon only has what the client sent)."""
        cleaned = clean_path("/" + src).lstrip("/")
        if clean_path(src).startswith("../") or clean_path(src) == "..":
            raise line_error(f"forbidden path outside the build context: {src}")
        return os.path.join(self.root, cleaned) if cleaned else self.root

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching a COPY wildcard (Go's ``filepath.Match``)."""
        pattern = clean_path(pattern).lstrip("/")
        return [rel for rel in self.files if go_match(pattern, rel)]
