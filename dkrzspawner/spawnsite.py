"""The spawner's side of the site file: read it, take its settings, and tell each job where it is.

A mixin of :class:`~dkrzspawner.spawner.DKRZSpawner`; :mod:`dkrzspawner.siteconfig` does the work.
"""

from __future__ import annotations

import os

from traitlets import TraitError, Unicode, validate
from traitlets.config import Configurable

from . import siteconfig

#: each site file as this hub process first read it: one version for all spawners until the hub restarts
_sites: dict[str, siteconfig.SiteConfig] = {}
_warned: set[str] = set()


class SiteFileMixin(Configurable):
    """Presets, partitions, policy and module settings from the site file that the kernels read as well."""

    site_config_file = Unicode(
        "",
        help="""A TOML file (an absolute path) with the settings that decide what users may ask for, written once
        for the hub and the kernels: ``presets``, ``partitions``, ``policy``, ``advanced_options``,
        ``lmod_command``, ``module_path`` and ``modules_init``, under the names of the settings here (the
        package ships an example, ``share/site.toml.example``). The whole file is checked when the hub creates
        a user's spawner; a mistake is one sentence naming the file and the entry. The hub reads it once per
        process: restart the hub after changing it.

        Each job gets the path in ``DKRZSPAWNER_SITE_CONFIG`` (and the user's hub groups that the policy
        names in ``DKRZSPAWNER_HUB_GROUPS``), so that ``dkrz-kernel`` in the server's terminal and the Slurm
        kernel provisioner in the server check kernels against the same presets, partitions and policy; the
        file must be readable by the users on the compute nodes. With a file, these settings belong in it
        alone: setting one of them in the hub's configuration as well is refused, naming it. Empty (the
        default): the settings come from the hub's configuration, and kernels read
        ``/etc/dkrzspawner/site.toml`` if it exists, else use the built-in defaults.""",
    ).tag(config=True)

    @validate("site_config_file")
    def _absolute_site_file(self, proposal):
        if proposal.value and not os.path.isabs(proposal.value):
            raise TraitError(f"site_config_file must be an absolute path (jobs read it elsewhere), not "
                             f"{proposal.value!r}")
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        path = self.site_config_file
        if path:
            if path not in _sites:
                _sites[path] = siteconfig.load(path)
            siteconfig.apply(self, _sites[path], siteconfig.SETTINGS)
        else:
            self._warn_kernels_differ()

    def _warn_kernels_differ(self) -> None:
        """Say once per process that kernels cannot see what the hub's configuration sets."""
        own = [where for where in (siteconfig.configured(self, name) for name in siteconfig.SETTINGS) if where]
        if own and ", ".join(own) not in _warned:
            _warned.add(", ".join(own))
            fallback = siteconfig.DEFAULT_PATH if os.path.exists(siteconfig.DEFAULT_PATH) else "the built-in defaults"
            self.log.warning("%s: kernels (dkrz-kernel, the Slurm kernel provisioner) do not see these and go by %s; "
                             "move them into a site file (c.DKRZSpawner.site_config_file) so both check the same",
                             ", ".join(own), fallback)

    def site_environment(self) -> dict[str, str]:
        """The job's variables that lead its kernels to this hub's site file and the user's hub groups."""
        if not self.site_config_file:
            return {}
        env = {siteconfig.ENV_PATH: self.site_config_file}
        hub_groups = [group.name for group in getattr(self.user, "groups", None) or ()]
        groups = siteconfig.hub_groups_value(hub_groups, self.policy_checked)
        if groups:
            env[siteconfig.ENV_HUB_GROUPS] = groups
        return env
