"""budgets.py: parsers of recorded slurmdbd output (Slurm 22.05.8, the local cluster), budgets, and the cache."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from dkrzspawner.budgets import (Budget, Ledger, Limits, Usage, cpu_minutes, limits_argv, parse_limits,
                               parse_usage, period_start, usage_argv)
from dkrzspawner.cluster import ALL_ASSOCIATIONS_ARGV
from dkrzspawner.slurm import SlurmTimeout
from tests.unit.fakeslurm import ACCOUNTING, FakeRunner, unanswered
from tests.unit.recorded import SACCT_USAGE, SACCTMGR_LIMITS


def test_cpu_minutes_from_a_tres_list():
    assert cpu_minutes("cpu=6000") == 6000
    assert cpu_minutes("mem=100,cpu=60,gres/gpu=2") == 60
    assert cpu_minutes("") is None and cpu_minutes("mem=5") is None


def test_limits_of_the_account_and_of_the_user():
    limits = parse_limits("carol", SACCTMGR_LIMITS)
    assert limits == {"ab0000": Limits(), "bb1234": Limits(account=6000)}
    own = parse_limits("alice", "bb1234||cpu=6000|cpu=600\nbb1234|alice|cpu=120|\n")
    assert own["bb1234"] == Limits(account=6000, account_running=600, user=120)
    with pytest.raises(ValueError):
        parse_limits("alice", "bb1234|alice\n")


def test_usage_sums_per_account_and_for_the_user():
    assert parse_usage("carol", SACCT_USAGE) == {"bb1234": Usage(total=84, user=18), "ab0000": Usage(total=40, user=16)}
    assert parse_usage("alice", "") == {}
    with pytest.raises(ValueError):
        parse_usage("alice", "bb1234|alice|Unknown\n")


def test_left_is_the_tighter_budget_and_never_negative():
    assert Budget("a", True, used_hours=30, user_hours=5, limit_hours=100).left_hours == 70
    assert Budget("a", True, used_hours=30, user_hours=5, limit_hours=100, user_limit_hours=10).left_hours == 5
    assert Budget("a", True, used_hours=130, user_hours=5, limit_hours=100).left_hours == 0
    assert Budget("a", True, used_hours=30, user_hours=5).left_hours is None
    assert Budget("a", True, used_hours=None, user_hours=None, limit_hours=100).left_hours is None


def test_period_start():
    assert period_start("", datetime.date(2026, 11, 29)) == "2026-01-01T00:00:00"
    assert period_start("2026-04-01") == "2026-04-01T00:00:00"
    assert period_start("2026-04-01T06:30:00+02:00") == "2026-04-01T06:30:00"
    with pytest.raises(ValueError):
        period_start("April")


async def test_a_statement_for_carol():
    runner = FakeRunner(ACCOUNTING)
    statement = await Ledger(runner, period="2026-11-01").statement("carol")
    assert statement.default_account == "bb1234" and statement.errors == ()
    data = statement.as_dict()
    assert data["period_start"] == "2026-11-01T00:00:00"
    assert [a["account"] for a in data["accounts"]] == ["bb1234", "ab0000"]
    bb = data["accounts"][0]
    assert bb == {"account": "bb1234", "default": True, "used_core_hours": 0.0233, "your_core_hours": 0.005,
                  "limit_core_hours": 100.0, "running_limit_core_hours": None, "your_limit_core_hours": None,
                  "left_core_hours": 99.9767}
    assert data["accounts"][1]["limit_core_hours"] is None and data["accounts"][1]["left_core_hours"] is None
    assert runner.argvs()[1:] == [list(limits_argv(("bb1234", "ab0000"))),
                                list(usage_argv(("bb1234", "ab0000"), "2026-11-01T00:00:00"))]
    assert "user=" not in " ".join(runner.argvs()[2]), "usage is the account's, filtered by account"


async def test_concurrent_callers_share_one_load_within_the_ttl():
    runner = FakeRunner(ACCOUNTING)
    ledger = Ledger(runner, ttl=30)
    await asyncio.gather(*(ledger.statement("alice") for _ in range(5)))
    await ledger.statement("alice")
    assert len(runner.commands) == 3


async def test_users_of_the_same_accounts_share_the_queries():
    runner = FakeRunner(ACCOUNTING)
    ledger = Ledger(runner, ttl=30)
    alice, carol = await asyncio.gather(ledger.statement("alice"), ledger.statement("carol"))
    again = await asyncio.gather(*(ledger.statement(user) for user in ("alice", "carol") * 50))
    assert again[0] == alice and again[1] == carol
    assert alice.budget("bb1234").user_hours == 66 / 3600 and carol.budget("bb1234").user_hours == 18 / 3600
    assert runner.count(ALL_ASSOCIATIONS_ARGV) == 1, "one table for all users"
    assert runner.count("sacct") == 2, "one usage query per set of accounts, not per user"


async def test_unanswered_usage_is_named_and_leaves_the_rest():
    statement = await Ledger(FakeRunner(unanswered(ACCOUNTING, "sacct"))).statement("alice")
    (budget,) = statement.budgets
    assert budget.limit_hours == 100 and budget.used_hours is None and budget.left_hours is None
    assert statement.errors == ("sacct: sacct did not answer within 10 s",)


async def test_without_the_accounts_there_is_no_statement():
    with pytest.raises(SlurmTimeout):
        await Ledger(FakeRunner(unanswered(ACCOUNTING, "sacctmgr"))).statement("alice")


async def test_a_user_without_accounts():
    statement = await Ledger(FakeRunner(ACCOUNTING)).statement("nobody")
    assert statement.budgets == () and statement.as_dict()["accounts"] == []


def test_a_bad_period_fails_at_once():
    with pytest.raises(ValueError):
        Ledger(FakeRunner(ACCOUNTING), period="next year")
