"""Fixtures of every unit test: no site file and no site kernel template of this machine is read; ``make_watcher`` makes JobWatchers on a
fake runner (:mod:`tests.unit.fakeslurm`)."""

import asyncio

import pytest

from dkrzspawner import siteconfig
from dkrzspawner.kernels import templates
from dkrzspawner.watcher import JobWatcher

#: the watcher's queue-position query (``squeue -h -t PD -p PARTITIONS ...``), answered apart from its status query
QUEUE_QUERY = ("squeue", "-h", "-t", "PD")


@pytest.fixture(autouse=True)
def no_site_file_of_this_machine(monkeypatch, tmp_path_factory):
    monkeypatch.delenv(siteconfig.ENV_PATH, raising=False)
    monkeypatch.delenv(siteconfig.ENV_HUB_GROUPS, raising=False)
    monkeypatch.setattr(siteconfig, "DEFAULT_PATH", str(tmp_path_factory.getbasetemp() / "no-site.toml"))
    monkeypatch.setenv(templates.SITE_TEMPLATES_ENV, "")


@pytest.fixture
async def make_watcher():
    """Make JobWatchers on a fake runner (that slow, that no loop of theirs polls by itself) and stop them after
    the test. Unless the test gives other answers, squeue lists no job, sacct has no record and the
    queue-position query answers an empty queue; every command must run as the hub, for everyone at once."""
    made = []

    def make(runner, **kw):
        kw.setdefault("interval", 3600)
        kw.setdefault("fast_interval", 3600)
        kw.setdefault("jitter", 0)
        kw.setdefault("min_gap", 0)  # every wake queries at once (test_watcher.py's gap tests set one)
        for key in ("squeue", "sacct", QUEUE_QUERY):
            runner.answers.setdefault(key, "")
        w = JobWatcher(runner, **kw)
        made.append((w, runner))
        return w

    yield make
    for w, _ in made:
        if w._task is not None:
            w._task.cancel()
            try:
                await w._task
            except (asyncio.CancelledError, Exception):
                pass
    for _, runner in made:
        assert not [c.argv for c in runner.commands if c.user], "the watcher asks as the hub, for everyone at once"
