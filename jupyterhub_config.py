"""Hub configuration for the demo and the tests: dkrzspawner's shipped drop-ins, then this folder's own.

The shipped ones (the accounts and announcements services, the page templates) are loaded from the installed
package, as a site would load them (``python -m dkrzspawner.dropins --list`` names them); ``jupyterhub_config.d/``
beside this file holds the demo's own settings (users, authenticator, presets).
"""

import glob
import os

from dkrzspawner import dropins

here = os.path.dirname(os.path.abspath(__file__))
for name in ("accounts", "announcements", "pages"):
    load_subconfig(dropins.path(name))  # noqa: F821 (provided by JupyterHub when it loads the file)
for path in sorted(glob.glob(os.path.join(here, "jupyterhub_config.d", "*.py"))):
    load_subconfig(path)  # noqa: F821
