"""registry.py: one runner, watcher, cache, ledger and catalogue per set of settings for the whole hub process."""

from __future__ import annotations

import logging

from dkrzspawner.modules import ModuleSettings
from dkrzspawner.registry import FACT_TIMEOUT, Registry

LOG = logging.getLogger("test")


def test_the_same_settings_share_one_part_and_others_get_their_own():
    registry = Registry()
    runner = registry.runner(sudo=["sudo", "-n"], timeout=30.0, log=LOG)
    assert registry.runner(sudo=("sudo", "-n"), timeout=30.0, log=LOG) is runner
    assert registry.runner(sudo=["sudo", "-n"], timeout=5.0, log=LOG) is not runner
    bounded = registry.runner(sudo=["sudo", "-n"], timeout=30.0, log=LOG, concurrency=16)
    assert bounded is not runner and bounded.concurrency == 16 and runner.concurrency is None
    assert registry.runner(sudo=["sudo", "-n"], timeout=30.0, log=LOG, concurrency=16) is bounded, \
        "one bound for all spawners"
    watch = dict(interval=30.0, fast_interval=1.0, pending_interval=5.0, jitter=0.1, accounting=True,
                 as_users=False, log=LOG)
    watcher = registry.watcher(runner, **watch)
    assert registry.watcher(runner, **watch) is watcher, "one batched squeue for every spawner"
    assert registry.watcher(runner, **{**watch, "as_users": True}) is not watcher
    cluster = registry.cluster(runner, ttl=60.0, timeout=30.0)
    assert registry.cluster(runner, ttl=60.0, timeout=30.0) is cluster
    assert cluster.timeout == FACT_TIMEOUT, "a fact query never waits a whole slurm_timeout"
    ledger = registry.budgets(runner, ttl=60.0, timeout=30.0, period="2026-01-01")
    assert registry.budgets(runner, ttl=60.0, timeout=30.0, period="2026-01-01") is ledger
    assert registry.budgets(runner, ttl=60.0, timeout=30.0, period="") is not ledger
    settings = ModuleSettings(lmod_command="", module_path=["/m"])
    catalog = registry.modules(runner, settings, timeout=30.0)
    assert registry.modules(runner, ModuleSettings(lmod_command="", module_path=["/m"]), timeout=30.0) is catalog
    assert registry.modules(runner, ModuleSettings(lmod_command="", module_path=["/n"]), timeout=30.0) is not catalog


def test_once_is_true_the_first_time_only_and_clear_starts_afresh():
    registry = Registry()
    assert registry.once("warning") and not registry.once("warning")
    runner = registry.runner(sudo=["sudo", "-n"], timeout=30.0, log=LOG)
    registry.clear()
    assert registry.once("warning")
    assert registry.runner(sudo=["sudo", "-n"], timeout=30.0, log=LOG) is not runner


def test_a_site_file_is_read_once_per_process(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[presets.tiny]\ndisplay_name = "Tiny"\npartition = "shared"\n')
    registry = Registry()
    first = registry.site(str(path))
    path.write_text('[presets.other]\ndisplay_name = "Other"\npartition = "shared"\n')
    assert registry.site(str(path)) is first and list(first.presets) == ["tiny"], "a restart reads it again"
