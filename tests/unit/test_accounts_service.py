"""accounts.py: the service answers for the hub-authenticated user only; its page; its options."""

from __future__ import annotations

import json

import pytest

from dkrzspawner.services.accounts import make_accounts_app, options
from dkrzspawner.budgets import Ledger
from tests.unit.servicetools import serve
from tests.unit.test_budgets import FakeRunner

READ = ["access:services!service=accounts"]
USERS = {"alice": READ, "carol": READ}


@pytest.fixture
def runner():
    return FakeRunner()


@pytest.fixture
async def call(runner, monkeypatch):
    request, server = serve(lambda: make_accounts_app(Ledger(runner)), "/services/accounts/", USERS, monkeypatch)
    yield request
    server.stop()


async def test_alice_gets_her_one_account(call):
    data = json.loads((await call("GET", "api/accounts", user="alice")).body)
    assert data["user"] == "alice" and data["default_account"] == "bb1234"
    assert [a["account"] for a in data["accounts"]] == ["bb1234"]
    assert data["accounts"][0]["limit_core_hours"] == 100.0


async def test_a_user_named_in_the_request_is_ignored(call, runner):
    data = json.loads((await call("GET", "api/accounts?user=carol", user="alice")).body)
    assert data["user"] == "alice"
    assert all("carol" not in argv for argv in runner.calls)


async def test_not_logged_in_is_refused(call):
    assert (await call("GET", "api/accounts")).code == 403


async def test_slurm_unanswered_gives_503(monkeypatch):
    request, server = serve(lambda: make_accounts_app(Ledger(FakeRunner(fail=("sacctmgr",)))), "/services/accounts/",
                            USERS, monkeypatch)
    try:
        response = await request("GET", "api/accounts", user="carol")
    finally:
        server.stop()
    assert response.code == 503
    assert json.loads(response.body)["message"] == "Slurm did not answer; try again in a minute"


async def test_the_page_has_one_row_per_account(call):
    page = (await call("GET", "", user="carol")).body.decode()
    assert 'data-account="bb1234"' in page and 'data-account="ab0000"' in page
    assert "(your default)" in page and "100.00" in page and "no limit" in page


def test_options_from_environment_and_command_line(monkeypatch):
    monkeypatch.setenv("DKRZ_ACCOUNTS_TTL", "5")
    monkeypatch.setenv("DKRZ_BUDGET_PERIOD_START", "2026-04-01")
    args = options([])
    assert (args.ttl, args.period_start) == (5.0, "2026-04-01")
    assert options(["--period-start", "2026-07-01", "--ttl", "60"]).period_start == "2026-07-01"
    with pytest.raises(SystemExit):
        options(["--period-start", "July"])


async def test_a_user_whose_name_is_no_unix_name_is_refused_without_asking_slurm(runner, monkeypatch):
    request, server = serve(lambda: make_accounts_app(Ledger(runner)), "/services/accounts/",
                            {"alice,carol": READ}, monkeypatch)
    try:
        response = await request("GET", "api/accounts", user="alice,carol")
    finally:
        server.stop()
    assert response.code == 403 and "is not a Unix user name" in json.loads(response.body)["message"]
    assert runner.calls == []
