"""Word and variable expansion gives what Docker's lexer gives (its documented cases)."""

import pytest

from minidocker.build.expand import ExpansionError, process_word, process_words

ENV = {"PWD": "/home", "SHELL": "bash", "EMPTY": "", "TWO": "a b", "PATHY": "/usr/local/bin/tool.tar.gz"}


@pytest.mark.parametrize("word, expected", [
    # plain text, quotes and escapes
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he\\'llo", "he'llo"),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hel\'lo"', "hel'lo"),
    ("'hello\\'", "hello\\"),
    ('"\'\'"', "''"),
    ("'\"hello\"'", '"hello"'),
    # $NAME
    ("$.", "$."),
    ("$1", ""),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ('"he\'$PWD\'"', "he'/home'"),
    # ${NAME} and modifiers
    ("\\${}", "${}"),
    ("he\\${}xx", "he${}xx"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("${aaa}}", "}"),
    ("${aaa:-bbb}}", "bbb}"),
    ("${aaa:-bbb {foo}", "bbb {foo"),
    # set-but-empty: ':-' treats empty as unset, '-' does not
    ("${EMPTY:-x}", "x"),
    ("${EMPTY-x}", ""),
    ("${EMPTY:+x}", ""),
    ("${EMPTY+x}", "x"),
    # prefix / suffix trimming and replacement
    ("${PATHY#*/}", "usr/local/bin/tool.tar.gz"),
    ("${PATHY##*/}", "tool.tar.gz"),
    ("${PATHY%.*}", "/usr/local/bin/tool.tar"),
    ("${PATHY%%.*}", "/usr/local/bin/tool"),
    ("${PATHY/local/LOCAL}", "/usr/LOCAL/bin/tool.tar.gz"),
    ("${PATHY//o/0}", "/usr/l0cal/bin/t00l.tar.gz"),
    # non-ASCII text goes through untouched
    ("안'녕'하세요", "안녕하세요"),
])
def test_process_word_matches_docker(word, expected):
    assert process_word(word, ENV) == expected


@pytest.mark.parametrize("word", [
    "he'llo", "he\\\\'llo", '"hello', '"hello\\"', "'hello", "${}", "he${}xx", "he${.}",
    "he${XXX:YYY}", "he${PWD", "he${PWD:=000}xx", "${{aaa}", "${aaa:-bbb", "${:}",
    "${:-bbb}", "${aaa:-bbb ${foo}", "${XXX:?must be set}", "${EMPTY:?}",
])
def test_bad_words_are_errors(word):
    with pytest.raises(ExpansionError):
        process_word(word, ENV)


def test_required_variable_message():
    with pytest.raises(ExpansionError, match="XXX: must be set"):
        process_word("${XXX:?must be set}", ENV)
    assert process_word("${PWD:?x}", ENV) == "/home"


@pytest.mark.parametrize("text, expected", [
    ("a b  c", ["a", "b", "c"]),
    ('a "b c" d', ["a", "b c", "d"]),
    ("$TWO x", ["a", "b", "x"]),            # split after expansion
    ('"$TWO" x', ["a b", "x"]),              # but not inside quotes
    ("a\\ b", ["a b"]),                      # an escaped space is part of the word
    ('""', []),
    ("  ", []),
])
def test_process_words_splits_after_expansion(text, expected):
    assert process_words(text, ENV) == expected


def test_backtick_escape_directive():
    # with '# escape=`' (Windows-style Dockerfiles) the backslash is an ordinary char
    assert process_word("C:\\dir`$PWD", ENV, escape="`") == "C:\\dir$PWD"
    assert process_word("a\\$PWD", ENV, escape="`") == "a\\/home"
