"""The hub services (announcements, accounts) with the real hub, its proxy and the real slurmdbd.

Usage comes from ``sacct`` (CPU time of ended and running jobs, current the moment a job ends; ``sreport``
would wait for slurmdbd's hourly rollup), so a job's core-seconds show as soon as the accounts service's cache
(30 s) expires. Screenshots of both service pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from tests.e2e.test_spawn_page import SCREENSHOTS, browser, login, shot  # noqa: F401 (fixtures)
from tests.slurmtools import sacct_state, slurm, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

ANNOUNCE = "custom:announcements:write"
MARKUP = '<script>alert("x")</script><b>not bold</b>'


def service_session(hub, user: str, service: str) -> requests.Session:
    """A browser-like session of ``user`` that has passed through the hub's OAuth for ``service``."""
    session = hub.login(user)
    page = session.get(f"{hub.public_url}/services/{service}/", timeout=30)
    assert page.status_code == 200 and page.url.endswith(f"/services/{service}/"), (page.status_code, page.url)
    return session


def hub_token(hub, user: str, scopes: list[str]) -> requests.Response:
    """Ask the hub, logged in as ``user``, for an API token of their own with ``scopes``."""
    session = hub.login(user)
    return session.post(f"{hub.public_url}/hub/api/users/{user}/tokens", json={"scopes": scopes, "expires_in": 600},
                        headers={"X-XSRFToken": session.cookies.get("_xsrf")}, timeout=30)


def service_api(hub, method: str, path: str, token: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{hub.public_url}/services/announcements/api/{path}",
                            headers={"Authorization": f"token {token}"}, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def admin_token(hub):
    response = hub_token(hub, "admin", ["access:services!service=announcements"])
    assert response.status_code == 201, response.text
    return response.json()["token"]


@pytest.fixture(scope="module")
def alice_token(hub):
    response = hub_token(hub, "alice", ["access:services!service=announcements"])
    assert response.status_code == 201, response.text
    return response.json()["token"]


def iso(seconds_from_now: float) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return moment.isoformat(timespec="seconds")


def announcement(text="Maintenance of the file system tonight", level="warning", start=-60, end=3600):
    return {"text": text, "level": level, "start": iso(start), "end": iso(end)}


@pytest.fixture
def announcements(hub, admin_token):
    """Create announcements as admin through the REST API; all are deleted afterwards."""
    created = []

    def create(**fields):
        response = service_api(hub, "POST", "announcements", admin_token, json=announcement(**fields))
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
        return response.json()
    yield create
    for ident in created:
        service_api(hub, "DELETE", f"announcements/{ident}", admin_token)


def current_texts(hub, token) -> list[str]:
    response = service_api(hub, "GET", "announcements", token)
    assert response.status_code == 200, response.text
    return [item["text"] for item in response.json()["announcements"]]


# -- accounts ------------------------------------------------------------------------------------------------
def accounts_of(session, hub, query="") -> dict:
    response = session.get(f"{hub.public_url}/services/accounts/api/accounts{query}", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_alice_sees_only_bb1234_and_carol_both(hub):
    alice = accounts_of(service_session(hub, "alice", "accounts"), hub)
    assert alice["user"] == "alice" and alice["default_account"] == "bb1234"
    assert [a["account"] for a in alice["accounts"]] == ["bb1234"]
    assert alice["accounts"][0]["limit_core_hours"] == 100.0, "ci/slurm-up gives bb1234 GrpTRESMins=cpu=6000"
    carol_session = service_session(hub, "carol", "accounts")
    carol = accounts_of(carol_session, hub)
    assert [a["account"] for a in carol["accounts"]] == ["bb1234", "ab0000"]
    assert carol["accounts"][1]["limit_core_hours"] is None
    # a user named in the request changes nothing: the hub-authenticated one counts
    assert accounts_of(service_session(hub, "bob", "accounts"), hub, "?user=carol")["user"] == "bob"


def test_usage_grows_after_a_job_ran(hub):
    session = service_session(hub, "alice", "accounts")

    def used() -> float:
        (bb1234,) = accounts_of(session, hub)["accounts"]
        return bb1234["your_core_hours"]
    before = used()
    out = subprocess.run(["sudo", "-n", "-u", "alice", "sbatch", "--parsable", "-A", "bb1234", "-p", "shared", "-c",
                          "2", "--mem=200M", "--time=1", "-J", "e2e-usage", "-o", "/dev/null", "--chdir=/tmp",
                          "--wrap", "sleep 5"], capture_output=True, text=True, timeout=60, check=True)
    job_id = out.stdout.strip().split(";")[0]
    wait_for(lambda: sacct_state(job_id) == "COMPLETED", timeout=60, what=f"job {job_id} to complete")
    cpu_seconds = int(slurm("sacct", "-X", "-n", "-P", "-j", job_id, "-o", "CPUTimeRAW").strip())
    assert cpu_seconds >= 10
    # the service keeps Slurm's answer 30 s
    grown = wait_for(lambda: (value := used()) > before and value, timeout=60, interval=3,
                     what="alice's usage to grow")
    assert grown - before == pytest.approx(cpu_seconds / 3600, abs=0.002)


def test_the_accounts_page(hub, login):
    page = login("carol")
    page.goto(f"{hub.public_url}/services/accounts/")
    assert page.locator("#accounts tbody tr").count() == 2
    assert "(your default)" in page.locator("tr[data-account=bb1234]").inner_text()
    assert page.locator("tr[data-account=bb1234] .limit").inner_text() == "100.00"
    assert page.locator("tr[data-account=ab0000] .limit").inner_text() == "no limit"
    shot(page, "services-accounts")


def test_the_spawn_form_shows_the_budget_and_warns(hub, login):
    page = login("alice")
    page.goto(f"{hub.public_url}/hub/spawn")
    assert re.fullmatch(r"\d+(\.\d)? core-hours of 100 core-hours", page.locator("#dkrz-budget-left").inner_text())
    assert "core-hours left" in page.locator("#dkrz-account option").inner_text()
    assert not page.locator("#dkrz-budget-warning").is_visible(), "6 core-hours fit"
    page.click("label[for=dkrz-mode-advanced]")
    page.select_option("#dkrz-partition", "shared")
    page.fill("#dkrz-cores", "8")
    page.fill("#dkrz-runtime", "7-00:00:00")
    assert page.locator("#dkrz-cost-advanced").inner_text() == "1344 core-hours"
    assert page.locator("#dkrz-budget-warning").is_visible()
    assert "account bb1234 has left" in page.locator("#dkrz-budget-warning").inner_text()
    shot(page, "spawn-budget-warning")


# -- announcements -------------------------------------------------------------------------------------------
def test_an_announcement_from_creation_to_expiry(hub, login, announcements, alice_token):
    created = announcements(text="Short maintenance " + MARKUP, level="critical", end=45)
    ends = datetime.datetime.fromisoformat(created["end"])
    assert created["text"] == "Short maintenance " + MARKUP, "stored as plain text, as written"
    assert "Short maintenance " + MARKUP in current_texts(hub, alice_token)

    page = login("alice")
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    shown = page.locator(f".dkrz-announcement[data-id='{created['id']}']")

    def on_spawn_page() -> bool:
        page.goto(f"{hub.public_url}/hub/spawn")
        return shown.count() == 1
    wait_for(on_spawn_page, timeout=30, interval=2, what="the announcement on the spawn page (hub cache: 10 s)")
    assert MARKUP in shown.inner_text(), "markup appears as text"
    assert shown.locator("b, script").count() == 0 and alerts == []
    assert "alert-danger" in shown.get_attribute("class")
    shot(page, "spawn-announcement")
    assert "Short maintenance &lt;script&gt;" in hub.home("alice"), "the home page shows it too, escaped"

    admin = login("admin")
    admin.goto(f"{hub.public_url}/services/announcements/")
    assert admin.locator(f"form[data-id='{created['id']}']").count() == 1, "admins get the edit forms"
    assert admin.locator(".announcement b").count() == 0
    shot(admin, "services-announcements")

    wait_for(lambda: datetime.datetime.now(datetime.timezone.utc) >= ends, timeout=60, interval=1, what="the end")
    assert "Short maintenance " + MARKUP not in current_texts(hub, alice_token)
    wait_for(lambda: not on_spawn_page(), timeout=30, interval=2, what="the announcement to leave the spawn page")


def test_other_users_may_not_write(hub, announcements, alice_token):
    existing = announcements()
    assert service_api(hub, "POST", "announcements", alice_token, json=announcement()).status_code == 403
    changed = service_api(hub, "PUT", f"announcements/{existing['id']}", alice_token, json=announcement(text="x"))
    assert changed.status_code == 403
    assert changed.json()["message"] == "only hub admins may change announcements"
    assert service_api(hub, "DELETE", f"announcements/{existing['id']}", alice_token).status_code == 403
    assert existing["text"] in current_texts(hub, alice_token)
    # nor can alice give herself the scope that would let her
    refused = hub_token(hub, "alice", [ANNOUNCE])
    assert refused.status_code == 400 and "not held by User alice" in refused.text
    # and without a token or login, nothing at all
    anonymous = requests.get(f"{hub.public_url}/services/announcements/api/announcements", timeout=30)
    assert anonymous.status_code == 403


@pytest.mark.parametrize("changes, message", [
    ({"text": "x" * 1001}, "text: must be at most 1000 characters."),
    ({"start": "next monday"}, "start: must be an ISO 8601 date and time"),
    ({"end": "2020-01-01T00:00:00Z"}, "announcement: end must be after start."),
    ({"level": "<i>urgent</i>"}, "level: must be one of info, warning, critical."),
])
def test_bad_input_is_refused(hub, admin_token, changes, message):
    response = service_api(hub, "POST", "announcements", admin_token, json={**announcement(), **changes})
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def _service_pid(hub, name: str) -> int | None:
    """The process of the hub's managed service ``name`` (a child of this hub, not of another one)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == hub.proc.pid and f"dkrzspawner.services.{name}".encode() in argv:
            return int(entry)
    return None


def test_announcements_survive_a_service_restart(hub, announcements, alice_token):
    kept = announcements(text="Kept across restarts")
    pid = _service_pid(hub, "announcements")
    assert pid, "the hub runs the announcements service"
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    # the hub polls its managed services (every 30 s) and starts a dead one again
    new_pid = wait_for(lambda: (found := _service_pid(hub, "announcements")) not in (None, pid) and found,
                       timeout=90, interval=1, what="the hub to restart the announcements service")
    wait_for(lambda: service_api(hub, "GET", "announcements", alice_token).status_code == 200, timeout=30,
             what="the restarted service to answer")
    assert kept["text"] in current_texts(hub, alice_token)
    print(f"announcements service {pid} killed; {new_pid} answered after {time.monotonic() - started:.0f} s")
