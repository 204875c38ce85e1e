"""announcements.py: the service's API and page (hub authentication replaced by a test header), and the hub's
pages showing the current announcements (banner.py, dkrz_announcements.html)."""

from __future__ import annotations

import datetime
import json

import jinja2
import pytest

from dkrzspawner import templates_path
from dkrzspawner.services.announcement_store import Store, parse
from dkrzspawner.services.announcements import WRITE_SCOPE, db_url, make_announcements_app
from dkrzspawner.services.banner import CurrentAnnouncements
from tests.unit.servicetools import serve

READ = "access:services!service=announcements"
USERS = {"alice": [READ], "admin": [READ], "operator": [READ, WRITE_SCOPE]}
SCRIPT = '<script>alert("x")</script><b>bold</b>'


def hours_from_now(hours: float) -> str:
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)).isoformat()


def body(text="Maintenance", level="warning", start=-1, end=2):
    return {"text": text, "level": level, "start": hours_from_now(start), "end": hours_from_now(end)}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'announcements.sqlite'}")


@pytest.fixture
async def call(store, monkeypatch):
    """``call(method, path, user=..., json_body=... or form=...)`` against the app on a free port."""
    request, server = serve(lambda: make_announcements_app(store), "/services/announcements/", USERS, monkeypatch)
    yield request
    server.stop()


async def test_any_user_reads_the_current_announcements(call, store):
    store.add(parse(body(text="now")))
    store.add(parse(body(text="later", start=5, end=6)))
    response = await call("GET", "api/announcements", user="alice")
    assert response.code == 200
    assert [item["text"] for item in json.loads(response.body)["announcements"]] == ["now"]


async def test_without_a_hub_login_the_api_refuses(call):
    response = await call("GET", "api/announcements")
    assert response.code == 403
    assert "log in" in json.loads(response.body)["message"]


async def test_admins_create_change_and_delete(call, store):
    created = await call("POST", "api/announcements", user="admin", json_body=body())
    assert created.code == 201
    item = json.loads(created.body)
    assert item["author"] == "admin" and item["level"] == "warning"
    changed = await call("PUT", f"api/announcements/{item['id']}", user="admin", json_body=body(text="new"))
    assert json.loads(changed.body)["text"] == "new"
    every = await call("GET", "api/announcements?all=1", user="admin")
    assert len(json.loads(every.body)["announcements"]) == 1
    assert (await call("DELETE", f"api/announcements/{item['id']}", user="admin")).code == 204
    assert (await call("DELETE", f"api/announcements/{item['id']}", user="admin")).code == 404
    assert store.all() == []


@pytest.mark.parametrize("method, path", [("POST", "api/announcements"), ("PUT", "api/announcements/1"),
                                          ("DELETE", "api/announcements/1"), ("GET", "api/announcements?all=1")])
async def test_other_users_may_not_write(call, store, method, path):
    store.add(parse(body()))
    response = await call(method, path, user="alice", json_body=body(text="mine") if method in ("POST", "PUT") else None)
    assert response.code == 403
    assert json.loads(response.body)["message"] == "only hub admins may change announcements"
    assert [item["text"] for item in store.all()] == ["Maintenance"]


@pytest.mark.parametrize("payload, message", [
    ("{not json", "The body is not valid JSON."),
    (body(text="x" * 1001), "text: must be at most 1000 characters."),
    (body(start=3, end=1), "announcement: end must be after start."),
    ({**body(), "start": "31.12.2026"}, "start: must be an ISO 8601 date and time"),
])
async def test_bad_input_gets_400_with_a_clear_message(call, store, payload, message):
    response = await call("POST", "api/announcements", user="admin", json_body=payload)
    assert response.code == 400
    assert json.loads(response.body)["message"].startswith(message)
    assert store.all() == []


async def test_the_page_shows_markup_as_text(call, store):
    store.add(parse(body(text=SCRIPT)))
    page = (await call("GET", "", user="alice")).body.decode()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<script>" not in page and "<b>bold" not in page
    assert 'id="create-form"' not in page, "no forms for users who may not write"


async def test_admins_publish_through_the_page_form(call, store):
    page = (await call("GET", "", user="admin")).body.decode()
    assert 'id="create-form"' in page
    response = await call("POST", "", user="admin", form={"action": "create", **body(text="from the form")})
    assert response.code == 302
    assert [item["text"] for item in store.current()] == ["from the form"]
    ident = store.all()[0]["id"]
    refused = await call("POST", "", user="admin", form={"action": "update", "id": ident, **body(end=-2)})
    assert refused.code == 400 and "end must be after start" in refused.body.decode()
    assert (await call("POST", "", user="alice", form={"action": "delete", "id": ident})).code == 403
    assert (await call("POST", "", user="admin", form={"action": "delete", "id": ident})).code == 302
    assert store.all() == []


def test_db_url_from_option_environment_or_default(monkeypatch):
    monkeypatch.delenv("DKRZ_ANNOUNCEMENTS_DB_URL", raising=False)
    assert db_url([]) == "sqlite:///dkrz-announcements.sqlite"
    monkeypatch.setenv("DKRZ_ANNOUNCEMENTS_DB_URL", "sqlite:////srv/a.sqlite")
    assert db_url([]) == "sqlite:////srv/a.sqlite"
    assert db_url(["--db-url", "sqlite://"]) == "sqlite://"


# -- the hub's pages -------------------------------------------------------------------------------------
def test_hub_pages_get_the_current_ones_cached(store):
    clock = [0.0]
    current = CurrentAnnouncements(str(store.engine.url), ttl=10, clock=lambda: clock[0])
    assert current(None) == [] and current("alice") == []
    store.add(parse(body(level="critical")))
    assert current("alice") == [], "kept for ttl seconds"
    clock[0] = 10.0
    (item,) = current("alice")
    assert item["alert"] == "danger" and item["until"].endswith(" UTC")


def test_a_broken_database_leaves_the_pages_working(tmp_path):
    current = CurrentAnnouncements(f"sqlite:///{tmp_path}/missing/dir/a.sqlite", ttl=0)
    assert current("alice") == []


def test_the_hub_template_escapes_the_text():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_path()), autoescape=True)
    item = {"id": 1, "text": SCRIPT, "level": "critical", "alert": "danger", "until": "2026-12-01 08:00 UTC"}
    html = env.get_template("dkrz_announcements.html").render(dkrz_announcements=[item])
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert 'class="alert alert-danger dkrz-announcement" role="alert"' in html
    assert env.get_template("dkrz_announcements.html").render().strip() == "", "nothing without the drop-in"


async def test_a_role_with_the_write_scope_makes_an_editor(call):
    created = await call("POST", "api/announcements", user="operator", json_body=body())
    assert created.code == 201 and json.loads(created.body)["author"] == "operator"


def test_the_service_stops_at_the_hubs_sigint_even_when_its_parent_ignored_sigint(tmp_path):
    """JupyterHub stops a managed service with SIGINT, then waits (about 30 s) before SIGTERM. A hub started in
    the background by a shell passes SIGINT on ignored; the service still stops at once."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
           "JUPYTERHUB_SERVICE_PREFIX": "/services/announcements/", "JUPYTERHUB_API_TOKEN": "t",
           "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api", "JUPYTERHUB_CLIENT_ID": "service-announcements"}
    service = subprocess.Popen([sys.executable, "-m", "dkrzspawner.services.announcements",
                                "--db-url", f"sqlite:///{tmp_path / 'a.sqlite'}"], env=env, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert service.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        service.send_signal(signal.SIGINT)
        assert service.wait(10) == 0
        assert "stopping (SIGINT)" in service.stderr.read()
    finally:
        service.kill()
        service.wait()
