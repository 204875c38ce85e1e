"""Extending a running server's walltime (off by default): the request, the site's limits (the partition's longest
runtime, extend_max_runtime, the account's core-hours), the scontrol command as the hub's account, and the
spawner's glue with the recorded cluster."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from dkrzspawner.extension import extended_limit, parse_request, time_limit
from dkrzspawner.options import OptionsError
from dkrzspawner.slurm import SlurmRejected, set_time_limit
from tests.unit.builders import make_spawner
from tests.unit.fakeslurm import ACCOUNTING, FakeRunner
from tests.unit.recorded import SQUEUE_JOB_INFO


@pytest.mark.parametrize("body, seconds", [({"add": "01:00:00"}, 3600), ({"add": "1-00:00:00"}, 86400),
                                           ({"add": "0:01:00"}, 60)])
def test_the_request_is_the_time_to_add(body, seconds):
    assert parse_request(body) == seconds


@pytest.mark.parametrize("body, words", [
    (None, '{"add": "HH:MM:SS"}'), ([], '{"add": "HH:MM:SS"}'), ({}, '{"add": "HH:MM:SS"}'),
    ({"add": "01:00:00", "job_id": "1"}, '{"add": "HH:MM:SS"}'), ({"add": 3600}, "HH:MM:SS or D-HH:MM:SS"),
    ({"add": "1h"}, "HH:MM:SS"), ({"add": "01:00:00\n"}, "HH:MM:SS"), ({"add": "00:00:59"}, "at least 00:01:00"),
])
def test_anything_else_is_refused_in_one_sentence(body, words):
    with pytest.raises(OptionsError) as info:
        parse_request(body)
    assert info.value.field == "add" and words in str(info.value) and str(info.value).endswith(".")


def test_the_time_limit_from_slurms_start_and_end():
    assert time_limit("2026-12-01T22:00:00", "2026-12-02T04:00:00") == 6 * 3600
    assert time_limit("N/A", "2026-12-02T04:00:00") is None and time_limit(None, None) is None


LIMITS = dict(partition="shared", longest=12 * 3600, site_longest=None, cpus=2, account="bb1234", left_hours=None)


def test_within_every_limit_the_new_limit_is_the_sum():
    assert extended_limit(limit=6 * 3600, add=3600, **LIMITS) == 7 * 3600
    assert extended_limit(limit=6 * 3600, add=6 * 3600, **LIMITS) == 12 * 3600, "up to the partition's longest"
    assert extended_limit(limit=6 * 3600, add=3600, **{**LIMITS, "longest": None}) == 7 * 3600


@pytest.mark.parametrize("change, add, sentence", [
    ({}, 6 * 3600 + 1, "Add: partition shared lets a server run at most 12:00:00; this one has 06:00:00 already, "
                       "so at most 06:00:00 more."),
    ({"site_longest": 8 * 3600}, 3 * 3600, "Add: this hub lets a server run at most 08:00:00; this one has "
                                           "06:00:00 already, so at most 02:00:00 more."),
    ({"site_longest": 5 * 3600}, 60, "Add: this hub lets a server run at most 05:00:00; this one has 06:00:00 "
                                     "already, so no more."),
    ({"left_hours": 3.5}, 2 * 3600, "Add: 4.0 more core-hours are needed, and account bb1234 has 3.5 left."),
])
def test_past_a_limit_it_says_which(change, add, sentence):
    with pytest.raises(OptionsError) as info:
        extended_limit(limit=6 * 3600, add=add, **{**LIMITS, **change})
    assert str(info.value) == sentence


def test_scontrol_runs_as_the_hubs_account_with_the_validated_limit():
    runner = FakeRunner({"scontrol": ""})
    asyncio.run(set_time_limit(runner, "930", 7 * 3600 + 60))
    assert runner.commands[-1].argv == ["scontrol", "update", "JobId=930", "TimeLimit=07:01:00"]
    assert runner.commands[-1].user is None, "as the hub's account (an operator), not as the user"
    for job, seconds in (("930 ", 3600), ("930,931", 3600), ("930", 59), ("930", 3600.0), ("930", True)):
        with pytest.raises(ValueError):
            asyncio.run(set_time_limit(runner, job, seconds))
    assert len(runner.commands) == 1


def running(monkeypatch, **config):
    answers = {**ACCOUNTING, "squeue": SQUEUE_JOB_INFO, "scontrol": ""}
    spawner, runner = make_spawner(monkeypatch, user="carol", answers=answers, **config)
    spawner.record.job_id = "930"  # running in shared on bb1234 with 2 CPUs, 22:00 to 04:00
    return spawner, runner


def test_the_spawner_extends_its_running_job(monkeypatch):
    spawner, runner = running(monkeypatch, extend_walltime=True)
    assert asyncio.run(spawner.extend(3600)) == {"job_id": "930", "time_limit": "07:00:00",
                                                  "end": "2026-12-02T05:00:00",
                                                  "ends_at": int(datetime.datetime(2026, 12, 2, 5).timestamp())}
    assert runner.argvs("scontrol")[-1] == ["scontrol", "update", "JobId=930", "TimeLimit=07:00:00"]


@pytest.mark.parametrize("config, add, words", [
    ({}, 3600, "not switched on at this hub"),  # off by default
    ({"extend_walltime": True, "extend_max_runtime": {"*": "08:00:00"}}, 3 * 3600, "this hub lets a server run "
                                                                                    "at most 08:00:00"),
    ({"extend_walltime": True, "extend_max_runtime": {"shared": "1-00:00:00", "*": "06:00:00"}}, 7 * 86400,
     "partition shared lets a server run at most 7-00:00:00"),
    ({"extend_walltime": True}, 60 * 3600, "core-hours are needed, and account bb1234 has"),  # 100 core-hours
])
def test_the_spawner_refuses_past_the_sites_limits_and_runs_nothing(monkeypatch, config, add, words):
    spawner, runner = running(monkeypatch, **config)
    with pytest.raises(OptionsError) as info:
        asyncio.run(spawner.extend(add))
    assert words in str(info.value)
    assert runner.argvs("scontrol") == [], "nothing was changed"


def test_a_server_without_a_running_job_is_not_extended(monkeypatch):
    spawner, runner = running(monkeypatch, extend_walltime=True)
    spawner.record.job_id = None
    with pytest.raises(OptionsError, match="no running job"):
        asyncio.run(spawner.extend(3600))


def test_slurms_refusal_reaches_the_caller(monkeypatch):
    spawner, runner = running(monkeypatch, extend_walltime=True)
    runner.answers["scontrol"] = SlurmRejected(["scontrol"], 1, "scontrol: error: Access/permission denied")
    with pytest.raises(SlurmRejected):
        asyncio.run(spawner.extend(3600))


def test_a_bad_site_limit_is_refused_when_configured(monkeypatch):
    from traitlets import TraitError
    with pytest.raises(TraitError, match="extend_max_runtime"):
        running(monkeypatch, extend_max_runtime={"*": "12h"})


def test_a_servers_token_may_extend_that_server_only_where_the_hub_defines_the_scope(monkeypatch):
    from jupyterhub import orm, scopes
    from types import SimpleNamespace

    from dkrzspawner import spawner as spawner_module
    from dkrzspawner.extension import SCOPE, SCOPES
    from dkrzspawner.spawner import DKRZSpawner

    seen = []
    monkeypatch.setattr(orm.Role, "find", classmethod(lambda cls, db, name: seen.append(db) or SimpleNamespace(
        scopes=["users:activity!user", "access:servers!server"]) if name == "server" else None))
    monkeypatch.setattr(spawner_module, "object_session", lambda orm_spawner: f"session of {orm_spawner.name}")
    role = ["users:activity!user", "access:servers!server"]
    token_scopes = DKRZSpawner(extend_walltime=True).server_token_scopes
    assert token_scopes(DKRZSpawner(extend_walltime=True)) == [], "no drop-in: JupyterHub's server role alone"
    monkeypatch.setitem(scopes.scope_definitions, SCOPE, SCOPES[SCOPE])
    assert token_scopes(DKRZSpawner(extend_walltime=True, orm_spawner=SimpleNamespace(name="ORM", server=None))) == [*role, f"{SCOPE}!server"]
    assert seen == ["session of ORM"], "the role is read in the spawner's own database session"
    assert token_scopes(DKRZSpawner()) == [], "extending is off: JupyterHub's server role alone"
    assert DKRZSpawner(server_token_scopes=["access:servers!server"]).server_token_scopes == ["access:servers!server"]
