"""The hub-wide shared parts: one of each per set of settings, shared by every spawner of the hub process.

All spawners of a hub share one :class:`~dkrzspawner.slurm.SlurmRunner` (its counters are what the hub costs
Slurm), one :class:`~dkrzspawner.watcher.JobWatcher` (one batched ``squeue`` for every job), one cache of the
cluster's facts, one of the account budgets, one module catalogue, each site file as first read, the recent jobs
in the hub's database, and the set of live spawners (for the per-partition server counts). :data:`REGISTRY` holds them, keyed by the settings that
make them; nothing is created at import time. Tests start from a fresh registry with :meth:`Registry.clear`.

Imports the core parts it builds (slurm, watcher, cluster, budgets, modules, recent, siteconfig); never JupyterHub.
"""

from __future__ import annotations

import logging
import weakref
from typing import Callable

from . import siteconfig
from .budgets import Ledger
from .cluster import Cluster
from .modules import ModuleCatalog, ModuleSettings
from .recent import RecentJobs
from .slurm import SlurmRunner
from .watcher import JobWatcher

#: the most any cached fact query may take (a spawn page must not wait for a slurm_timeout of 30 s)
FACT_TIMEOUT = 10.0


class Registry:
    """The shared parts of one hub process (see the module's docstring)."""

    def __init__(self):
        self._parts: dict[tuple, object] = {}
        #: every spawner object of this process, for counts across all users
        self.spawners: weakref.WeakSet = weakref.WeakSet()

    def _get(self, key: tuple, make: Callable[[], object]):
        if key not in self._parts:
            self._parts[key] = make()
        return self._parts[key]

    def clear(self) -> None:
        """Forget every part (tests)."""
        self._parts.clear()
        self.spawners = weakref.WeakSet()

    def runner(self, *, sudo, timeout: float, log: logging.Logger, concurrency: int | None = None) -> SlurmRunner:
        """The hub's one runner for these settings: its bound on concurrent commands is shared by all spawners."""
        return self._get(("runner", tuple(sudo), timeout, concurrency),
                         lambda: SlurmRunner(sudo=sudo, timeout=timeout, log=log, concurrency=concurrency))

    def watcher(self, runner: SlurmRunner, *, interval: float, fast_interval: float, pending_interval: float,
                jitter: float, accounting: bool, as_users: bool, log: logging.Logger) -> JobWatcher:
        return self._get(
            ("watcher", id(runner), interval, fast_interval, pending_interval, jitter, accounting, as_users),
            lambda: JobWatcher(runner, interval=interval, fast_interval=fast_interval,
                               pending_interval=pending_interval, jitter=jitter, accounting=accounting,
                               as_users=as_users, log=log))

    def cluster(self, runner: SlurmRunner, *, ttl: float, timeout: float) -> Cluster:
        return self._get(("cluster", id(runner), ttl),
                         lambda: Cluster(runner, ttl=ttl, timeout=min(timeout, FACT_TIMEOUT)))

    def budgets(self, runner: SlurmRunner, *, ttl: float, timeout: float, period: str) -> Ledger:
        return self._get(("budgets", id(runner), ttl, period),
                         lambda: Ledger(runner, ttl=ttl, timeout=min(timeout, FACT_TIMEOUT), period=period,
                                        cluster=self.cluster(runner, ttl=ttl, timeout=timeout)))

    def modules(self, runner: SlurmRunner, settings: ModuleSettings, *, timeout: float) -> ModuleCatalog:
        """The module catalogue asked with ``settings`` (a spawner's :class:`~dkrzspawner.modules.ModuleSettings`)."""
        return self._get(("modules", id(runner), *settings.module_catalog_key),
                         lambda: settings.new_module_catalog(runner, timeout=min(timeout, FACT_TIMEOUT)))

    def recent(self, session) -> RecentJobs:
        """The recent jobs in the database of ``session`` (the hub's ``db``); its table is created once."""
        return self._get(("recent", id(session)), lambda: RecentJobs(session))

    def site(self, path: str) -> siteconfig.SiteConfig:
        """The site file as this process first read it: one version for all spawners until the hub restarts."""
        return self._get(("site", path), lambda: siteconfig.load(path))

    def once(self, key: str) -> bool:
        """True the first time ``key`` is asked for in this process (a warning said once)."""
        if ("once", key) in self._parts:
            return False
        self._parts[("once", key)] = True
        return True


#: the registry of this process
REGISTRY = Registry()
