"""The spawner's environment modules: where Lmod is, which modules jobs may load, and the loading lines.

A mixin of :class:`~dkrzspawner.spawner.DKRZSpawner`; :mod:`dkrzspawner.modules` does the work.
"""

from __future__ import annotations

from traitlets import Float, List, Unicode, default
from traitlets.config import Configurable

from . import modules

_catalogs: dict[tuple, modules.ModuleCatalog] = {}


class ModulesMixin(Configurable):
    """Environment modules (Lmod) in presets, partitions, the Advanced tab and the batch script."""

    lmod_command = Unicode(
        modules.DEFAULT_LMOD,
        help="""Lmod's own program, which the hub runs as ``lmod bash --terse avail`` to learn the modules the
        cluster offers (cached for ``modules_cache_ttl``). Empty, or not on the hub host: no modules are
        offered, and a request naming one is refused.""",
    ).tag(config=True)

    module_path = List(
        Unicode(),
        help="""Folders of modulefiles, as ``MODULEPATH`` for the hub's ``module avail`` and for the jobs.
        Default: the folders listed in ``/etc/lmod/modulespath`` (Lmod's own list for login shells).""",
    ).tag(config=True)

    modules_init = Unicode(
        modules.DEFAULT_INIT,
        help="""Shell file that defines the ``module`` command in a job (Lmod's ``init/bash``). The batch script
        sources it, sets ``MODULEPATH`` to ``module_path`` and loads the request's modules before the
        server starts; a module that fails to load ends the job at once, and the spawn fails with its message.""",
    ).tag(config=True)

    modules_cache_ttl = Float(
        300.0,
        help="Seconds the hub keeps the list of available modules (one ``module avail`` per this many seconds).",
    ).tag(config=True)

    @default("module_path")
    def _module_path_default(self):
        return modules.default_module_path()

    @property
    def module_catalog(self) -> modules.ModuleCatalog:
        """The hub-wide cache of the modules the cluster offers."""
        key = (id(self.runner), self.lmod_command, tuple(self.module_path), self.modules_cache_ttl)
        if key not in _catalogs:
            _catalogs[key] = modules.ModuleCatalog(self.runner, lmod_command=self.lmod_command,
                                                   module_path=self.module_path, ttl=self.modules_cache_ttl,
                                                   timeout=min(self.slurm_timeout, 10.0))
        return _catalogs[key]

    async def offered_modules(self) -> tuple[str, ...] | None:
        """The modules users may pick, or None when none are offered (no Lmod) or Lmod did not answer."""
        return await self.module_catalog.offered(self.log)
