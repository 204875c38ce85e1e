"""The jupyter_server extension that the JupyterLab extension talks to: this server's Slurm job, the allocations
of its Slurm kernels, and the user's kernels made from templates, as a REST API under ``dkrzspawner/api/``.

Enabled by default in the job side (``etc/jupyter/jupyter_server_config.d/dkrzspawner.json``, shipped with the
package); switched off in parts with ``c.DKRZLab`` (:mod:`.config`). The modules, one job each:

- :mod:`.config`: :class:`~.config.DKRZLab`, what the site offers of the extension;
- :mod:`.jobinfo`: this server's job, from squeue (cached a few seconds);
- :mod:`.allocations`: the provisioner's allocations with squeue's state, and cancelling one;
- :mod:`.choices`: what the user may choose for a kernel (the hub's offer);
- :mod:`.hubapi`: the hub's API with this server's token (extending this server's walltime);
- :mod:`.handlers`: the REST handlers (thin), on :mod:`dkrzspawner.kernels.templates` for the kernels.

Imports jupyter_server and tornado (in :mod:`.handlers` and :mod:`.hubapi`), the kernels and the core; never
JupyterHub.
"""

from __future__ import annotations

from ..slurm import SlurmRunner
from .config import DKRZLab
from .handlers import SETTINGS_KEY, routes
from .hubapi import HubAPI
from .jobinfo import OwnJob


class Lab:
    """The extension's state in one server: its settings, the Slurm runner (as the user itself: no sudo), the
    server's job and the hub's API (with the server's token)."""

    #: tests replace this to record or fake Slurm
    runner_factory = SlurmRunner

    def __init__(self, config: DKRZLab):
        self.config = config
        self.runner = type(self).runner_factory()
        self.job = OwnJob(self.runner)
        self.hub = HubAPI()


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "dkrzspawner.lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Add the handlers to the server's web application (jupyter_server 2)."""
    serverapp.web_app.settings[SETTINGS_KEY] = Lab(DKRZLab(parent=serverapp))
    serverapp.web_app.add_handlers(".*$", routes(serverapp.web_app.settings["base_url"]))
    serverapp.log.info("dkrzspawner.lab: the JupyterLab extension's API is at %sdkrzspawner/api/",
                       serverapp.web_app.settings["base_url"])
