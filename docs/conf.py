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
