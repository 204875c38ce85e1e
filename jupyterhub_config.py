"""Hub configuration for the demo and the tests: loads every drop-in file of ``jupyterhub_config.d/``.

Sites do the same with their own folder; each drop-in there can also be loaded on its own.
"""

import glob
import os

here = os.path.dirname(os.path.abspath(__file__))
for path in sorted(glob.glob(os.path.join(here, "jupyterhub_config.d", "*.py"))):
    load_subconfig(path)  # noqa: F821 (provided by JupyterHub when it loads the file)
