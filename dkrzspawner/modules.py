"""Environment modules (Lmod): which modules the cluster offers, and the lines that load them in a job.

The hub asks Lmod itself (``lmod bash --terse avail``, an argument list, no shell) with the module path the
jobs will see; the answer is cached like the cluster's other facts. Validation (in :mod:`dkrzspawner.options`)
only lets through names from that list, so a module name that reaches a batch script or a kernel's command
line is one the cluster has.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

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
