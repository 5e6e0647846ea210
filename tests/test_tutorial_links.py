"""The teaching material points at code that exists.

A tutorial starts with a header such as::

    > Code: [`minidocker/engine/commit.py`](../minidocker/engine/commit.py) (`container_diff`,
    > `engine_made_paths`).

Two promises are checked in every tutorial, in README.md and in the pages under docs/
(not docs/tutorials/, which ``docs/conf.py`` copies from tutorials/), and a third in
docs/architecture.rst:

* every relative link names a file or directory of the repository;
* the backticked names in parentheses right after a link to a Python file are defined
  in that file: a module-level ``def``, ``class`` or assignment, or ``Class.member``.
  The file is parsed with :mod:`ast`, not imported, so this test needs no root and runs
  in well under a second.

* the dotted names of the code in docs/architecture.rst (its run paths, such as the one
  of ``-v`` from the command line to ``mount(2)``): ``engine.volumes.parse_mounts`` must be
  defined in minidocker/engine/volumes.py, ``kernel.mounts`` must be a module.

A parenthesis counts as a list of names when it holds nothing but backticked words
separated by commas or "and"; ``(the record)`` or ``(the `/v2/` ping)`` are prose.
"""

from __future__ import annotations

import ast
import glob
import os
import re
from functools import lru_cache

import pytest

from conftest import REPO


def teaching_pages() -> list[str]:
    pages = glob.glob(os.path.join(REPO, "tutorials", "*.md")) + [os.path.join(REPO, "README.md")]
    for ext in ("md", "rst"):
        pages += glob.glob(os.path.join(REPO, "docs", "**", f"*.{ext}"), recursive=True)
    skip = (os.path.join(REPO, "docs", "tutorials", ""), os.path.join(REPO, "docs", "_build", ""))
    return sorted(p for p in pages if not p.startswith(skip))


PAGES = teaching_pages()

# [text](target) in Markdown, `text <target>`_ in reStructuredText
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
RST_LINK = re.compile(r"`[^`<]*<([^>`]+)>`_{1,2}")
# what may follow a link: "(`a`, `b` and `c`)", ``name`` (reST) as well as `name`
NAME = r"`{1,2}([^`]+)`{1,2}"
NAME_LIST = re.compile(r"\s*\(\s*(" + NAME + r"(?:\s*(?:,|and|,\s*and)\s*" + NAME + r")*)\s*\)")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def readable_text(path: str) -> str:
    """The page without fenced code blocks (a ``[x](y)`` in a console block is not a
    link) and without the ``>`` of block quotes (a header's list of names may wrap)."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".md"):
        text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
        text = re.sub(r"^\s*>[ \t]?", "", text, flags=re.M)
    return text


def links(path: str):
    """(target, names) for every relative link of the page: the target resolved to a
    path in the repository, and the names listed in parentheses right after it ([] if
    none)."""
    text = readable_text(path)
    pattern = RST_LINK if path.endswith(".rst") else MD_LINK
    for m in pattern.finditer(text):
        target = m.group(1).split("#")[0]
        if not target or re.match(r"^[a-z]+:", target):  # an anchor, https:, mailto:
            continue
        after = NAME_LIST.match(text, m.end())
        names = re.findall(NAME, after.group(1)) if after else []
        yield os.path.normpath(os.path.join(os.path.dirname(path), target)), names


@lru_cache(maxsize=None)
def defined_names(py_file: str) -> frozenset[str]:
    """What a reader can find in ``py_file``: its module-level functions, classes and
    assigned names, and ``Class.member`` for what a class body defines."""
    with open(py_file) as f:
        tree = ast.parse(f.read(), py_file)

    def names_in(body) -> list[tuple[str, ast.AST]]:
        found = []
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.append((node.name, node))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name):
                            found.append((n.id, n))
        return found

    names = set()
    for name, node in names_in(tree.body):
        names.add(name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{name}.{member}" for member, _ in names_in(node.body))
    return frozenset(names)


def test_the_pages_are_found_and_read():
    """Guards the test itself: it sees the pages, and reads a header's list of names."""
    rel = {os.path.relpath(p, REPO) for p in PAGES}
    assert {"README.md", "tutorials/12-container-layers-and-diff.md",
            "docs/data-root.rst"} <= rel
    assert not any(r.startswith("docs/tutorials/") for r in rel)
    page = os.path.join(REPO, "tutorials", "12-container-layers-and-diff.md")
    commit_py = os.path.join(REPO, "minidocker", "engine", "commit.py")
    assert (commit_py, ["container_diff", "engine_made_paths"]) in list(links(page))
    assert "container_diff" in defined_names(commit_py)
    assert problems_with(commit_py, ["container_diff", "no_such_function"]) == \
        ["minidocker/engine/commit.py: defines no `no_such_function`"]
    assert problems_with(os.path.join(REPO, "no", "such.py"), []) == ["no/such.py: no such file"]


def problems_with(target: str, names: list[str]) -> list[str]:
    shown = os.path.relpath(target, REPO)
    if shown.startswith(".."):
        return [f"{shown}: outside the repository"]
    if not os.path.exists(target):
        return [f"{shown}: no such file"]
    if names and not target.endswith(".py"):
        return [f"{shown}: names listed after a link that is not a Python file"]
    if not all(IDENTIFIER.match(name) for name in names):
        return [f"{shown}: ({', '.join(names)}) reads as a list of names but is not one "
                f"(name what the file defines, or reword it as prose)"]
    return [f"{shown}: defines no `{name}`" for name in names
            if name not in defined_names(target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_links_point_at_existing_files_and_names(page):
    problems = [p for target, names in links(page) for p in problems_with(target, names)]
    if problems:
        pytest.fail(f"{os.path.relpath(page, REPO)}:\n  " + "\n  ".join(problems), pytrace=False)


# --------------------------------------------------------------------------- architecture.rst
ARCHITECTURE = os.path.join(REPO, "docs", "architecture.rst")
#: A dotted name of the code: a package of minidocker, then modules and a name in the last
#: one (``engine.monitor.run``); ``minidocker.`` in front is allowed.
CODE_NAME = re.compile(r"(?<![\w./-])(?:minidocker\.)?((?:cli|api|engine|runtime|kernel|network|image|"
                       r"build|registry)(?:\.[A-Za-z_]\w*)+)")


def imported_names(py_file: str) -> frozenset[str]:
    """Names a package's ``__init__.py`` imports to offer them (``runtime.exec_process``)."""
    with open(py_file) as f:
        tree = ast.parse(f.read(), py_file)
    return frozenset(alias.asname or alias.name for node in tree.body
                     if isinstance(node, ast.ImportFrom) for alias in node.names)


def code_name_problem(dotted: str) -> str | None:
    """None if ``dotted`` (``engine.volumes.parse_mounts``) names a module of minidocker
    or something a module defines; else what is wrong."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = os.path.join(REPO, "minidocker", *parts[:i])
        if os.path.isfile(base + ".py"):
            py_file = base + ".py"
            break
        if os.path.isfile(os.path.join(base, "__init__.py")):
            py_file = os.path.join(base, "__init__.py")
            break
    else:
        return f"`{dotted}`: no such module in minidocker/"
    rest = ".".join(parts[i:])
    if not rest or rest in defined_names(py_file):
        return None
    if py_file.endswith("__init__.py") and rest in imported_names(py_file):
        return None
    return f"`{dotted}`: {os.path.relpath(py_file, REPO)} defines no `{rest}`"


def test_architecture_names_the_real_functions():
    with open(ARCHITECTURE) as f:
        text = f.read()
    names = sorted(set(CODE_NAME.findall(text)))
    # Guards the test: the -v path is there, read down to the mount(2) call.
    assert {"cli.containers.container_options", "engine.volumes.parse_mounts",
            "runtime.rootfs_setup.mount_bind", "kernel.mounts.bind_mount",
            "kernel.syscalls.mount"} <= set(names)
    assert code_name_problem("engine.volumes.no_such_function") == \
        "`engine.volumes.no_such_function`: minidocker/engine/volumes.py defines no `no_such_function`"
    problems = [p for p in map(code_name_problem, names) if p]
    if problems:
        pytest.fail("docs/architecture.rst:\n  " + "\n  ".join(problems), pytrace=False)
