"""Sphinx configuration. ``sphinx-build -W docs docs/_build`` (warnings are errors) runs in CI."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

project = "minidocker"
author = "the minidocker developers"
copyright = "2026, the minidocker developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "myst_parser", "clidoc"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
exclude_patterns = ["_build", "dev"]
html_theme = "alabaster"
html_static_path = ["_static"]

# The console lexer cannot colour heredocs; the block is still shown, uncoloured.
suppress_warnings = ["misc.highlighting_failure"]


def _copy_tutorials() -> None:
    """Copy ../tutorials/*.md into docs/tutorials/ for Sphinx (the tutorials stay in one
    place for readers on GitHub and for the test that runs them). Links that leave the
    tutorials folder (to source files) point into the repository, which the built docs do
    not contain: they become plain code text."""
    import glob
    import re
    import shutil
    src = os.path.join(os.path.dirname(HERE), "tutorials")
    dst = os.path.join(HERE, "tutorials")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    outside = re.compile(r"\[([^\]]+)\]\((\.\./[^)]*)\)")
    for path in sorted(glob.glob(os.path.join(src, "*.md"))):
        with open(path) as f:
            text = f.read()
        text = outside.sub(lambda m: f"{m.group(1)} (`{m.group(2)[3:]}`)", text)
        with open(os.path.join(dst, os.path.basename(path)), "w") as f:
            f.write(text)


_copy_tutorials()
