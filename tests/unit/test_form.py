"""form.py and templates/options_form.html: what the spawn form shows, its accessibility, and site overrides."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from dkrzspawner import form
from dkrzspawner.form import options_from_form, preselect
from dkrzspawner.options import DKRZ_PRESETS, load_presets, validate
from tests.unit.builders import Page, facts_for


@pytest.fixture(scope="module")
def presets():
    return load_presets(DKRZ_PRESETS)


def render(presets, facts, last=None, server_name="", **kwargs) -> str:
    selected = preselect(last, presets, facts)
    return form.render(form.context(presets=presets, facts=facts, selected=selected, server_name=server_name),
                       **kwargs)


def test_alice_sees_two_preset_cards_and_her_one_account(presets):
    page = Page(render(presets, facts_for("alice")))
    cards = [a for tag, a in page.elements if tag == "fieldset" and "dkrz-card" in a.get("class", "")]
    assert [c["data-preset"] for c in cards] == ["shared", "prepost"]
    assert [o["value"] for o in page.options("dkrz-account")] == ["bb1234"]
    choices = page.inputs("preset")
    assert [c["value"] for c in choices] == ["shared:1", "shared:2", "shared:4", "prepost:1", "prepost:2",
                                             "prepost:4"]
    assert [c["value"] for c in choices if "checked" in c] == ["shared:1"]
    assert "internet access" in page.words
    assert "2 cores, 5 GB memory" in page.words, "memory follows the cores"
    assert "12 core-hours in 6 h" in page.words
    assert page.by_id("dkrz-cost-preset") is not None and "6 core-hours" in page.words


def test_carol_sees_both_accounts_with_her_default_selected(presets):
    page = Page(render(presets, facts_for("carol", default="ab0000")))
    options = page.options("dkrz-account")
    assert [o["value"] for o in options] == ["ab0000", "bb1234"]
    assert [o["value"] for o in options if "selected" in o] == ["ab0000"]
    assert "ab0000 (your default)" in page.words


def test_every_field_has_a_label_and_sits_in_a_fieldset(presets):
    page = Page(render(presets, facts_for("carol")))
    for attrs in page.inputs():
        assert attrs.get("id") in page.labels and page.labels[attrs["id"]].strip(), attrs
    assert page.legends >= 5
    names = {a["name"] for a in page.inputs()}
    assert names == {"mode", "account", "preset", "preset_runtime", "partition", "nodes", "cores", "memory", "gpus",
                     "runtime", "reservation"}


def test_mode_works_without_javascript(presets):
    page = Page(render(presets, facts_for("carol")))
    modes = page.inputs("mode")
    assert [(m["type"], m["value"]) for m in modes] == [("radio", "preset"), ("radio", "advanced")]
    assert [m["value"] for m in modes if "checked" in m] == ["preset"]
    html = render(presets, facts_for("carol"))
    assert ":has(#dkrz-mode-advanced:checked) :is(.dkrz-panel-preset" in html, "CSS switches the tabs"
    # both panels are in the page; the server ignores the fields of the other mode
    submitted = submitted_untouched(page)
    submitted.update(mode=["preset"], preset=["prepost:2"])
    assert options_from_form(submitted) == {"preset": "prepost", "cores": 2, "account": "bb1234"}


def test_gpu_field_only_where_partitions_have_gpus(presets):
    page = Page(render(presets, facts_for("carol")))
    assert page.by_id("dkrz-gpus") is not None
    assert "Only in partition gpu" in page.words
    data = json.loads(re.search(r'id="dkrz-form-data">(.*?)</script>', render(presets, facts_for("carol"))).group(1))
    assert data["partitions"]["gpu"]["max_gpus"] == 2 and data["partitions"]["shared"]["max_gpus"] == 0
    none = Page(render(presets, facts_for("carol", policy={"*": {"max_gpus": 0}})))
    assert none.by_id("dkrz-gpus") is None


def test_limits_follow_the_partition(presets):
    page = Page(render(presets, facts_for("carol"), last={"partition": "gpu"}))
    assert "gpu: up to 1 node, 8 cores and 16 GB per node, 2 GPUs per node, runtime up to 12 h." in page.words
    assert [o["value"] for o in page.options("dkrz-partition") if "selected" in o] == ["gpu"]
    shared = Page(render(presets, facts_for("carol")))
    assert "shared: up to 1 node, 8 cores and 16 GB per node, runtime up to 7 days." in shared.words


def test_the_table_of_free_resources(presets):
    page = Page(render(presets, facts_for("carol")))
    rows = [a["data-partition"] for tag, a in page.elements if "data-partition" in a]
    assert rows == ["shared", "prepost", "gpu"]
    assert "5 of 8" in page.words and "1 of 2" in page.words, "recorded: 3 cores and a GPU in use"


def test_the_last_options_of_this_server_are_preselected(presets):
    last = {"partition": "gpu", "cores": 3, "gpus": 1, "runtime": "01:30:00", "account": "ab0000"}
    page = Page(render(presets, facts_for("carol"), last=last, server_name="second"))
    assert "checked" in page.by_id("dkrz-mode-advanced")
    assert page.by_id("dkrz-cores")["value"] == "3" and page.by_id("dkrz-gpus")["value"] == "1"
    assert page.by_id("dkrz-runtime")["value"] == "01:30:00" and page.by_id("dkrz-memory")["value"] == ""
    assert [o["value"] for o in page.options("dkrz-account") if "selected" in o] == ["ab0000"]
    assert "your server second" in page.words and "used last time" in page.words
    assert "4.5 core-hours" in page.words


def submitted_untouched(page: Page) -> dict:
    """What a browser sends for the form as rendered (checked radios, selected options, input values)."""
    data = {}
    for attrs in page.inputs():
        name = attrs.get("name")
        if attrs.get("type") == "radio":
            if "checked" in attrs:
                data[name] = [attrs["value"]]
        elif "type" in attrs:
            data[name] = [attrs.get("value", "")]
        else:  # a select
            options = page.options(attrs["id"])
            data[name] = [next((o["value"] for o in options if "selected" in o), options[0]["value"])]
    return data


@pytest.mark.parametrize("last", [
    {"partition": "gpu", "cores": 3, "gpus": 1, "runtime": "01:30:00", "account": "ab0000"},
    {"preset": "prepost", "cores": 4, "account": "ab0000"},
    {"preset": "shared", "runtime": "02:00:00"},
    None,
])
def test_the_untouched_form_submits_what_was_preselected(presets, last):
    facts = facts_for("carol")
    page = Page(render(presets, facts, last=last))
    request = validate(options_from_form(submitted_untouched(page)), presets, facts=facts)
    assert request == validate(last or {}, presets, facts=facts)


def test_reservations_open_to_the_user_are_offered(presets):
    page = Page(render(presets, facts_for("alice")))
    assert [o["value"] for o in page.options("dkrz-reservation")] == ["", "course"]
    assert page.by_id("dkrz-reservation") is not None
    assert Page(render(presets, facts_for("alice", reservations=()))).by_id("dkrz-reservation") is None


def test_values_are_escaped(presets):
    facts = facts_for("carol", policy={"gpu": {"max_gpus": 2, "description": "<script>alert(1)</script>",
                                               "display_name": "gpu\" onmouseover=\"x"}})
    html = render(presets, facts, server_name="<b>x</b>")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert 'onmouseover="x' not in html
    assert "<b>x</b>" not in html
    assert "</script><script>" not in html.split('id="dkrz-form-data">')[1].split("</script>")[0]


def test_without_slurm_only_presets_with_a_notice(presets):
    page = Page(render(presets, facts_for("alice", partitions=None, accounts="unknown")))
    assert page.by_id("dkrz-mode-advanced") is None and page.by_id("dkrz-partition") is None
    assert [o["value"] for o in page.options("dkrz-account")] == [""]
    assert page.by_id("dkrz-availability") is None
    no_facts = Page(render(presets, None))
    assert [c["value"] for c in no_facts.inputs("preset") if "checked" in c] == ["shared:1"]


def test_advanced_switched_off(presets):
    page = Page(render(presets, facts_for("alice", advanced=False)))
    assert page.by_id("dkrz-mode-advanced") is None and page.by_id("dkrz-panel-advanced") is None
    assert page.by_id("dkrz-availability") is not None, "the free resources of the presets' partitions"


def test_a_site_overrides_one_block(presets, tmp_path):
    (tmp_path / "options_form.html").write_text(
        '{% extends "dkrzspawner/options_form.html" %}'
        '{% block dkrz_intro %}<p id="site-note">Welcome to Levante.</p>{{ super() }}{% endblock %}')
    html = render(presets, facts_for("alice"), extra_paths=[str(tmp_path)])
    assert '<p id="site-note">Welcome to Levante.</p>' in html
    assert 'id="dkrz-mode-preset"' in html


@pytest.mark.parametrize("value, text", [(1, "1 core-hour"), (12, "12 core-hours"), (0.5, "0.5 core-hours"),
                                         (4.25, "4.2 core-hours")])
def test_core_hours_text(value, text):
    assert form.core_hours_text(value) == text


def test_the_form_says_when_a_server_with_this_runtime_would_end():
    now = datetime.datetime(2026, 12, 2, 15, 45)
    assert form.end_text(2 * 3600, now) == "17:45 today"
    assert form.end_text(12 * 3600, now) == "03:45 tomorrow"
    assert form.end_text(7 * 86400, now) == "15:45 on 2026-12-09"
