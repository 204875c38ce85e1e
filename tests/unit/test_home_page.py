"""The hub's home page template (dkrzspawner/templates/home.html) rendered with JupyterHub's own base templates:
the walltime-left cell carries its end for the countdown, and the recent servers are listed with "Start again"."""

from __future__ import annotations

from types import SimpleNamespace

import jinja2

import dkrzspawner

#: JupyterHub's home page, as far as ours uses it (the block it extends)
HUB_HOME = "<main>{% block main %}JupyterHub's own home{% endblock %}</main>"


class ListedSpawner(SimpleNamespace):
    def job_summary(self):
        return self.summary

    def recent_servers(self):
        return self.recent


def render(spawners) -> str:
    env = jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(dkrzspawner.templates_path()),
        jinja2.DictLoader({"templates/home.html": HUB_HOME}),
    ]), autoescape=True)
    user = SimpleNamespace(name="carol", all_spawners=lambda include_default=True: spawners)
    return env.get_template("home.html").render(user=user, announcements=[], base_url="/hub/", xsrf_token="tok/1")


def running(ends_at):
    return {"job_id": "12", "state": "RUNNING", "host": "node1", "time_left": "9 min", "ends_at": ends_at,
            "waiting": "", "last_end": None}


def test_the_walltime_left_carries_its_end_for_the_countdown():
    html = render([ListedSpawner(name="", summary=running(1_800_000_000), recent=[])])
    assert 'data-ends-at="1800000000"' in html and "dkrz-countdown" in html
    assert "setInterval(tick, 1000)" in html
    assert "JupyterHub's own home" in html
    assert "Recent servers" not in html, "no section without recent jobs"


def test_the_recent_servers_are_listed_with_start_again_and_a_failed_ones_output():
    recent = [{"job_id": "30", "server": "analysis", "summary": "preset shared: 2 cores", "submitted":
               "2026-12-02T01:00:00+00:00", "started": "2026-12-02T01:00:05+00:00",
               "ended": "2026-12-02T02:00:00+00:00", "state": "FAILED", "end_reason": "The job failed (exit code 1).",
               "core_hours": 2.0, "output_tail": "ImportError: <no module>", "active": False, "failed": True,
               "start_again": "/hub/spawn/carol/analysis?opt-preset=shared&opt-cores=2"},
              {"job_id": "31", "server": "", "summary": "partition gpu: 1 node", "submitted": "2026-12-02T01:00:00+00:00",
               "started": None, "ended": None, "state": None, "end_reason": None, "core_hours": None,
               "output_tail": None, "active": True, "failed": False, "start_again": "/hub/spawn/carol"}]
    html = render([ListedSpawner(name="", summary=running(None), recent=recent)])
    assert "Recent servers" in html
    assert 'href="/hub/spawn/carol/analysis?opt-preset=shared&amp;opt-cores=2"' in html
    assert "The job failed (exit code 1)." in html and "ImportError: &lt;no module&gt;" in html
    assert "running now" in html and "not ended yet" in html and ">2.00<" in html
    assert html.count("Start again</a>") == 1, "a running server has no Start again"
    assert "data-ends-at" not in html, "no countdown without an end"


def test_an_extendable_running_server_has_an_extend_control_posting_to_the_hub_api():
    html = render([ListedSpawner(name="big one", summary=running(1_800_000_000), recent=[], extend_walltime=True),
                   ListedSpawner(name="other", summary=running(None), recent=[], extend_walltime=True)])
    assert 'action="/hub/api/dkrzspawner/extend/carol/big%20one?_xsrf=tok/1"' in html
    assert html.count('<form class="dkrz-extend') == 1, "only a server with an end is extended"
    assert '<option value="01:00:00" selected>+1 h</option>' in html and "dkrz-extend-message" in html


def test_without_extend_walltime_there_is_no_extend_control():
    html = render([ListedSpawner(name="", summary=running(1_800_000_000), recent=[], extend_walltime=False)])
    assert "<th scope=\"col\">Extend</th>" not in html and '<form class="dkrz-extend' not in html
