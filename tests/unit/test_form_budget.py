"""The spawn form with account budgets (the accounts drop-in's ``show_budgets``): budget left next to the cost,
a warning when the request costs more, and the figures for the script."""

from __future__ import annotations

import json

import pytest

from dkrzspawner import form
from dkrzspawner.form import preselect
from dkrzspawner.options import DKRZ_PRESETS, load_presets
from tests.unit.test_advanced_options import facts_for
from tests.unit.test_form import Page


def figures(left, limit=100.0):
    return {"account": "", "default": True, "used_core_hours": None if left is None else limit - left,
            "your_core_hours": 0.0, "limit_core_hours": limit, "running_limit_core_hours": None,
            "your_limit_core_hours": None, "left_core_hours": left}


@pytest.fixture(scope="module")
def presets():
    return load_presets(DKRZ_PRESETS)


def page_for(presets, user, budgets, last=None):
    facts = facts_for(user)
    ctx = form.context(presets=presets, facts=facts, selected=preselect(last, presets, facts), budgets=budgets)
    html = form.render(ctx)
    data = json.loads(html.split('id="dkrz-form-data">', 1)[1].split("</script>", 1)[0])
    return Page(html), data


def test_the_budget_left_is_shown_next_to_the_cost(presets):
    page, data = page_for(presets, "carol", {"bb1234": figures(99.5), "ab0000": figures(None, None)})
    assert "Budget left on account bb1234 : 99.5 core-hours of 100 core-hours" in page.words
    assert "hidden" in page.by_id("dkrz-budget-warning"), "6 core-hours fit"
    assert "bb1234 (your default), 99.5 core-hours left" in page.words
    assert data["budgets"]["ab0000"]["left_core_hours"] is None


def test_a_request_costing_more_than_is_left_is_warned_about(presets):
    page, _ = page_for(presets, "alice", {"bb1234": figures(5.0)},
                       last={"preset": "prepost", "cores": 4, "account": "bb1234"})
    warning = page.by_id("dkrz-budget-warning")
    assert warning is not None and "hidden" not in warning
    assert "would use more core-hours than account bb1234 has left" in page.words


def test_the_chosen_account_counts(presets):
    page, _ = page_for(presets, "carol", {"bb1234": figures(1.0), "ab0000": figures(None, None)},
                       last={"preset": "shared", "cores": 4, "account": "ab0000"})
    assert "Budget left on account ab0000 : no limit" in page.words
    assert "hidden" in page.by_id("dkrz-budget-warning")


def test_without_budgets_nothing_is_shown(presets):
    page, data = page_for(presets, "alice", None)
    assert page.by_id("dkrz-budget") is None and data["budgets"] == {}
    assert "left" not in " ".join(o.get("value", "") for o in page.options("dkrz-account"))


def test_budget_view():
    assert form.budget_view({}, "bb1234", 5) is None
    assert form.budget_view({"bb1234": figures(4.0)}, "bb1234", 5)["over"]
    assert not form.budget_view({"bb1234": figures(None, None)}, "bb1234", 5000)["over"]
