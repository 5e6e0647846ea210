"""Docker's word and variable expansion for Dockerfile instructions.

``docker build`` does not run a shell to expand ``ENV``, ``COPY``, ``WORKDIR`` and friends:
it has its own small lexer (``shell/lex.go`` in BuildKit, also used by the classic
builder) that mimics ``sh`` closely but not exactly. This module is that lexer, rule for
rule, so that a Dockerfile means the same here as under Docker:

- ``$NAME`` and ``${NAME}``: the variable's value, or the empty string when unset.
  A name is letters, digits and ``_``; ``$`` followed by anything else is a literal ``$``.
- ``${NAME:-word}`` / ``${NAME-word}``: ``word`` when NAME is unset (``:-``: or empty).
- ``${NAME:+word}`` / ``${NAME+word}``: ``word`` when NAME is set (``:+``: and non-empty).
- ``${NAME:?msg}`` / ``${NAME?msg}``: an error when NAME is unset (or empty).
- ``${NAME#pat}`` ``${NAME##pat}`` ``${NAME%pat}`` ``${NAME%%pat}``: trim a shortest or
  longest matching prefix or suffix (``*`` and ``?`` wildcards).
- ``${NAME/pat/repl}`` ``${NAME//pat/repl}``: replace the first / every match.
- ``'single quotes'`` keep everything literal; ``"double quotes"`` keep everything but
  ``$`` expansions and the escapes ``\\"``, ``\\$``, ``\\\\``.
- The escape character (``\\``, or `````` with the ``# escape=``` directive) makes the next
  character literal; at the very end of the word it disappears.

Two results come out of one pass: the *word* (quotes removed, spaces kept, for ENV
values, WORKDIR, USER, ...) and the *words* (split on unquoted whitespace *after*
expansion, for EXPOSE and the sources of COPY in shell form).
"""

from __future__ import annotations

import re

from . import BuildError

SPECIAL_PARAMS = set("@*#?-$!0")


class ExpansionError(BuildError):
    """A word Docker refuses to expand: ``${}``, an unclosed quote, ``${X:?unset}``..."""


class _Words:
    """Collects whitespace-separated words while the lexer writes its result.

    Expanded variables and literal text are split on whitespace; quoted text and
    escaped characters never are (they go in "raw")."""

    def __init__(self):
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    """One pass over one word. ``env`` maps names to values; absent means unset."""

    def __init__(self, text: str, env: dict[str, str], escape: str):
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_escapes = False

    # -- scanner
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    # -- grammar
    def process_until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Read up to ``stop`` (or the end when ``stop`` is empty), expanding as we go.

        ``raw_escapes`` keeps escape characters in the output: patterns of ``${X#pat}``
        need them to tell ``\\*`` from ``*``."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            while self.peek():
                ch = self.peek()
                if stop and ch == stop:
                    self.next()
                    return "".join(result), words.result()
                if ch == "$":
                    value = self.process_dollar()
                    result.append(value)
                    words.add_string(value)  # an expanded value is split on spaces
                elif ch == "'":
                    value = self.process_single_quote()
                    result.append(value)
                    words.add_raw_string(value)
                elif ch == '"':
                    value = self.process_double_quote()
                    result.append(value)
                    words.add_raw_string(value)
                else:
                    ch = self.next()
                    if ch == self.escape:
                        if self.raw_escapes:
                            words.add_raw_char(ch)
                            result.append(ch)
                        ch = self.next()
                        if not ch:  # an escape at the very end vanishes
                            break
                        words.add_raw_char(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop:
                raise ExpansionError(
                    f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.result()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        # sh: "Enclosing characters in single quotes preserves the literal meaning of
        # all the characters" -- so a single quote cannot be escaped inside them.
        self.next()
        out = []
        while True:
            ch = self.next()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        # sh: inside double quotes only $, ` and \ keep a meaning; Docker escapes just
        # ", $ and the escape character itself, any other escape stays literal.
        self.next()
        out = []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def process_name(self) -> str:
        name = ""
        while self.peek():
            ch = self.peek()
            if not name and ch.isdigit():
                # positional parameters: $1, $12 (always unset in a Dockerfile)
                while self.peek().isdigit():
                    name += self.next()
                return name
            if not name and ch in SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            name += self.next()
        return name

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def process_dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            return self.lookup(name)[0]

        self.next()  # the {
        if not self.peek():
            raise ExpansionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        if ch == "}":
            return self.lookup(name)[0]
        if ch == "/":
            return self.process_replace(name)
        null_is_unset = False
        modifier = ch
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            modifier += ch
        if ch not in ("+", "-", "?", "#", "%"):
            raise ExpansionError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word, _ = self.process_until("}", raw_escapes=ch in "#%")
        except ExpansionError:
            if not self.peek():
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        value, is_set = self.lookup(name)
        empty = null_is_unset and value == ""
        if ch == "-":
            return word if (not is_set or empty) else value
        if ch == "+":
            return "" if (not is_set or empty) else word
        if ch == "?":
            if not is_set:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if empty:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        # '#' trims a prefix, '%' a suffix; doubled ('##', '%%') means the longest match
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == "%":
            return trim_suffix(word, value, greedy)
        return trim_prefix(word, value, greedy)

    def process_replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_until("/", raw_escapes=True)
        except ExpansionError:
            raise ExpansionError("syntax error: missing '/' in ${}") from None
        try:
            replacement, _ = self.process_until("}", raw_escapes=True)
        except ExpansionError:
            raise ExpansionError("syntax error: missing '}'") from None
        value, _ = self.lookup(name)
        regex = shell_pattern_to_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda m: replacement, value)
        return regex.sub(lambda m: replacement, value, count=1)


def shell_pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """``*`` (any string) and ``?`` (one character) of a shell pattern as a regex;
    ``\\`` makes ``*``, ``?`` or ``\\`` literal. No ``[...]`` classes, as in Docker."""
    out = "^" if anchored else ""
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out += star
        elif ch == "?":
            out += "."
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise ExpansionError(f"invalid pattern ({pattern}) in substitution: "
                                     f"invalid escape '\\{following}'")
            out += re.escape(following)
            i += 1
        else:
            out += re.escape(ch)
    return re.compile(out, re.S)


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = shell_pattern_to_regex(pattern, greedy, anchored=True).match(value)
    return value[match.end():] if match else value


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # Match the pattern at the end: try each start position, earliest first for the
    # longest suffix (greedy), latest first for the shortest.
    regex = shell_pattern_to_regex(pattern, greedy=True, anchored=False)
    starts = range(len(value) + 1) if greedy else range(len(value), -1, -1)
    for start in starts:
        if regex.fullmatch(value, start):
            return value[:start]
    return value


def process_word(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """Expand one word, keeping its inner spaces: ``"a  b"$X`` -> ``a  b<X's value>``."""
    return _Lexer(word, env, escape).process_until("", False)[0]


def process_words(word: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """Expand, then split on unquoted whitespace: ``a "b c" $X`` -> ``[a, b c, ...]``.

    As in Docker, the split happens *after* expansion, so ``X="1 2"`` gives two words."""
    return _Lexer(word, env, escape).process_until("", False)[1]


def env_dict(env_list: list[str]) -> dict[str, str]:
    """``["A=1", "B=2"]`` (an image config's Env) as a dict; a later entry wins."""
    out = {}
    for item in env_list:
        key, sep, value = item.partition("=")
        out[key] = value if sep else ""
    return out
