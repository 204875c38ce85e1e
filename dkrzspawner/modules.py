"""Environment modules (Lmod): the settings, which modules the cluster offers, and the lines that load them.

:class:`ModuleSettings` holds the four settings (where Lmod is, the module path, the ``init`` file, the cache's
lifetime) that the spawner and the kernel provisioner both inherit, so ``c.DKRZSpawner.lmod_command`` and
``c.SlurmProvisioner.lmod_command`` are the same trait. :class:`ModuleCatalog` asks Lmod itself (``lmod bash
--terse avail``, an argument list through the runner, no shell) with the module path the jobs will see, and
caches the answer. Validation (in :mod:`dkrzspawner.options`) only lets through names from that list, so a
module name that reaches a batch script or a kernel's command line is one the cluster has. Core: imports
traitlets, :mod:`dkrzspawner.cache`, :mod:`dkrzspawner.slurm` (the errors) and :mod:`dkrzspawner.units`; never
JupyterHub or jupyter_client.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from traitlets import Float, List, Unicode, default
from traitlets.config import Configurable

from .cache import TTLCache
from .slurm import SlurmError
from .units import MODULE

#: Lmod's own program (where Debian's ``lmod`` package and Lmod's default install put it)
DEFAULT_LMOD = "/usr/share/lmod/lmod/libexec/lmod"
#: the shell file that defines ``module`` (Lmod's ``init/bash``)
DEFAULT_INIT = "/usr/share/lmod/lmod/init/bash"
#: where Lmod (and Debian's package) list the module folders a login shell starts with
LMOD_MODULESPATH = Path("/etc/lmod/modulespath")
#: how a job step loads modules before it becomes the kernel: fixed text, the names come as variables
LOAD_AND_EXEC = 'source "$DKRZ_MODULES_INIT" && module load $DKRZ_MODULES && exec "$@"'


def default_module_path(modulespath: Path = LMOD_MODULESPATH) -> list[str]:
    """The folders Lmod's ``modulespath`` file lists (comments and missing folders left out)."""
    try:
        lines = modulespath.read_text().splitlines()
    except OSError:
        return []
    folders = [line.split("#", 1)[0].strip() for line in lines]
    return [folder.rstrip("/") for folder in folders if folder and os.path.isdir(folder)]


def parse_avail(text: str) -> tuple[str, ...]:
    """Module names from ``lmod bash --terse avail`` (written to stderr): ``example/1.0`` and ``example``.

    Folder headers (``/path:``) are skipped; markers such as ``(default)`` are dropped; a name that ends in
    ``/`` is a module with versions, offered without one (``module load example`` takes the default).
    """
    found = []
    for line in text.splitlines():
        line = re.sub(r"\([^)]*\)", "", line).strip()
        if not line or line.endswith(":"):
            continue
        name = line.rstrip("/")
        if MODULE.fullmatch(name) and name not in found:
            found.append(name)
    return tuple(found)


class ModuleCatalog:
    """The modules the cluster offers, asked once per ``ttl`` for every spawner (or kernel) of a process."""

    def __init__(self, runner, *, lmod_command: str = DEFAULT_LMOD, module_path: list[str] | None = None,
                 ttl: float = 300.0, timeout: float = 10.0):
        self.runner = runner
        self.lmod_command = lmod_command
        self.module_path = default_module_path() if module_path is None else list(module_path)
        self.timeout = timeout
        self.cache = TTLCache(ttl)

    @property
    def configured(self) -> bool:
        """Whether this hub offers modules at all: Lmod is there and knows at least one folder."""
        return bool(self.lmod_command) and os.access(self.lmod_command, os.X_OK) and bool(self.module_path)

    async def available(self) -> tuple[str, ...]:
        """Every module name the cluster offers, sorted; raises the runner's errors when Lmod fails."""
        async def load():
            result = await self.runner.run([self.lmod_command, "bash", "--terse", "avail"],
                                           env={"MODULEPATH": ":".join(self.module_path)}, timeout=self.timeout)
            return tuple(sorted(parse_avail(result.stderr), key=str.lower))
        return await self.cache.get("avail", load)

    async def offered(self, log: logging.Logger) -> tuple[str, ...] | None:
        """The modules users may pick, or None when none are offered (no Lmod) or Lmod did not answer."""
        if not self.configured:
            return None
        try:
            return await self.available()
        except SlurmError as exc:
            log.warning("The list of environment modules is not available: %s", exc.reason)
            return None


def job_environment(init: str, modules) -> dict[str, str]:
    """The variables :data:`LOAD_AND_EXEC` reads: Lmod's shell set-up and the (validated) names to load."""
    return {"DKRZ_MODULES_INIT": init, "DKRZ_MODULES": " ".join(modules)}


class ModuleSettings(Configurable):
    """The environment-module settings (Lmod) of a spawner or a kernel provisioner, which inherit them."""

    lmod_command = Unicode(
        DEFAULT_LMOD,
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
        DEFAULT_INIT,
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
        return default_module_path()

    @property
    def module_catalog_key(self) -> tuple:
        """What a catalog made from these settings depends on (a new catalog is needed when it changes)."""
        return (self.lmod_command, tuple(self.module_path), self.modules_cache_ttl)

    def new_module_catalog(self, runner, timeout: float) -> ModuleCatalog:
        """A catalog that asks Lmod with these settings through ``runner``, each answer within ``timeout``."""
        return ModuleCatalog(runner, lmod_command=self.lmod_command, module_path=self.module_path,
                             ttl=self.modules_cache_ttl, timeout=timeout)
