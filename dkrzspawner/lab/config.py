"""``DKRZLab``: what a site switches on of the JupyterLab extension, read from the Jupyter server's configuration
(``c.DKRZLab.panel = False`` in a ``jupyter_server_config.py`` of the job environment). The frontend asks for it
(``GET dkrzspawner/api/config``), so a switch applies to every user. Imports traitlets only."""

from __future__ import annotations

from traitlets import Bool, Int, List
from traitlets.config import Configurable


class DKRZLab(Configurable):
    """The parts of the JupyterLab extension a site offers."""

    templates = Bool(
        True, help="Offer the 'Slurm kernels' section in the launcher: kernel templates, creating, editing and "
                   "removing one's own Slurm kernels, registering one's own environments. Off, the extension's "
                   "API refuses these changes too (dkrz-kernel in a terminal still makes kernels)."
    ).tag(config=True)
    statusbar = Bool(
        True, help="Show this server's Slurm job (id, node, walltime left as a countdown) in the status bar, and "
                   "notify before the walltime runs out (see notify_minutes)."
    ).tag(config=True)
    panel = Bool(
        True, help="Offer the 'Slurm' side panel: this server's job and the allocations of its Slurm kernels, "
                   "with a cancel button each."
    ).tag(config=True)
    notify_minutes = List(
        Int(), [15, 5], help="Minutes before the server's walltime ends at which JupyterLab notifies the user "
                             "(an empty list: no notifications)."
    ).tag(config=True)

    def as_json(self) -> dict:
        """What the frontend gets from ``GET dkrzspawner/api/config``."""
        return {"templates": self.templates, "statusbar": self.statusbar, "panel": self.panel,
                "notify_minutes": [int(minutes) for minutes in self.notify_minutes]}
