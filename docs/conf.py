"""Sphinx configuration of dkrzspawner's documentation (``make docs``; warnings are errors).

The docs describe this checkout: the repository root comes first on ``sys.path``, so the configuration
reference is generated from the code next to it (``docs/_ext/dkrzdocs.py``). No network access, neither at build
time nor in the pages: no intersphinx, and a theme that vendors its assets.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "_ext"))

import dkrzspawner  # noqa: E402

project = "dkrzspawner"
author = "the dkrzspawner authors"
copyright = "the dkrzspawner authors"
release = version = dkrzspawner.__version__

extensions = ["dkrzdocs"]
exclude_patterns = ["_build", "_ext", "_static"]
root_doc = "index"
nitpicky = True
highlight_language = "none"
html_title = f"dkrzspawner {release}"
# The Jupyter family's look (JupyterHub's own docs use pydata-sphinx-theme). The theme ships its fonts, icons and
# scripts, and nothing below makes a page or the build reach the network: no analytics, no version switcher, no
# icon links, no announcement fetched from a URL, no ads.
html_theme = "pydata_sphinx_theme"
html_theme_options = {
    "logo": {"text": f"dkrzspawner {release}"},
    "navbar_start": ["navbar-logo"],
    "navbar_center": ["navbar-nav"],  # the top-level toctree: user guide, admin guide, reference, architecture
    "navbar_end": ["theme-switcher"],
    "header_links_before_dropdown": 5,
    "navigation_depth": 3,
    "show_toc_level": 2,
    "secondary_sidebar_items": {"**": ["page-toc", "sourcelink"], "index": []},
    "primary_sidebar_end": [],
    "footer_start": ["copyright"],
    "footer_end": ["theme-version"],
    "icon_links": [],
    "analytics": {},
    "search_bar_text": "Search the docs",
}
html_sidebars = {"index": [], "architecture": []}  # single pages: no section navigation
