"""Run a tutorial's ``console`` blocks and compare what they print with what it says.

The format (also in docs/dev/contracts.md): a line starting ``$ `` is a command; a line
ending in ``\\`` continues it, and so does a heredoc's body up to its terminator; the
lines after it, up to the next command or the end of the block, are its expected
output. ``...`` alone on a line matches any number of lines; ``{word}`` inside a line
matches any non-empty text. Each command must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field

FENCE = re.compile(r"^```(\S*)(.*)$")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
PLACEHOLDER = re.compile(r"\{\w+\}")


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)
    line: int = 0
    skip_ci: bool = False


def parse(text: str) -> list[Step]:
    """The commands of every ``console`` block, in order, with their expected output."""
    steps: list[Step] = []
    lines = text.splitlines()
    i = 0
    in_block = skip = False
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m and not in_block:
            if m.group(1) == "console":
                in_block, skip = True, "skip-ci" in m.group(2)
            else:  # skip other fenced blocks whole
                i += 1
                while i < len(lines) and not lines[i].startswith("```"):
                    i += 1
            i += 1
            continue
        if in_block and line.startswith("```"):
            in_block = False
            i += 1
            continue
        if in_block:
            if line.startswith("$ "):
                start = i + 1
                cmd = [line[2:]]
                while cmd[-1].endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd.append(lines[i])
                for hd in HEREDOC.finditer("\n".join(cmd)):
                    terminator = hd.group(2)
                    while i + 1 < len(lines):
                        i += 1
                        cmd.append(lines[i])
                        if lines[i].strip() == terminator:
                            break
                steps.append(Step("\n".join(cmd), line=start, skip_ci=skip))
            elif steps:
                steps[-1].expected.append(line)
        i += 1
    for step in steps:  # trailing blank lines in a block are layout, not output
        while step.expected and not step.expected[-1].strip():
            step.expected.pop()
    return steps


def _line_regex(expected: str) -> re.Pattern:
    parts = PLACEHOLDER.split(expected)
    return re.compile(".+?".join(re.escape(p) for p in parts) + r"\Z")


def matches(expected: list[str], actual: list[str]) -> bool:
    """True when ``actual`` fits ``expected`` (with ``...`` lines and ``{word}`` holes)."""
    def go(e: int, a: int) -> bool:
        if e == len(expected):
            return a == len(actual)
        if expected[e].strip() == "...":
            return any(go(e + 1, k) for k in range(a, len(actual) + 1))
        if a == len(actual):
            return False
        if not _line_regex(expected[e].rstrip()).match(actual[a].rstrip()):
            return False
        return go(e + 1, a + 1)
    return go(0, 0)


def run_step(step: Step, cwd: str, env: dict, timeout: int = 300) -> tuple[int, list[str]]:
    proc = subprocess.run(["bash", "-c", step.command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    out = proc.stdout.splitlines()
    while out and not out[-1].strip():
        out.pop()
    return proc.returncode, out


def describe_failure(path: str, step: Step, code: int, actual: list[str]) -> str:
    return (f"{os.path.basename(path)}:{step.line}: $ {step.command}\n"
            f"exit code: {code}\n--- expected ---\n" + "\n".join(step.expected) +
            "\n--- actual ---\n" + "\n".join(actual))


def quote(s: str) -> str:
    return shlex.quote(s)
