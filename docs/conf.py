"""Sphinx configuration of dkrzspawner's documentation (``make docs``; warnings are errors).

The docs describe this checkout: the repository root comes first on ``sys.path``, so the configuration
reference is generated from the code next to it. No network access: no intersphinx.
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
html_theme = "alabaster"
html_theme_options = {"description": "A JupyterHub spawner for Slurm HPC centres", "fixed_sidebar": True,
                      "page_width": "1100px", "sidebar_width": "250px"}
