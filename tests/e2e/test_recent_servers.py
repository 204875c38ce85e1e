"""Recent servers, "Start again", the live countdown and the form's end time, in a real browser (Playwright driving
Debian's Chromium) against the real hub and Slurm: a server is spawned, stopped and deleted, and the home page still
lists its job with how it ended; a restarted hub still knows it; "Start again" fills in the form with its options.

Screenshots go to test-artifacts/screenshots/ (the user guide uses them: docs/user/servers.rst).
"""

from __future__ import annotations

import datetime
import re

import pytest
import requests

from tests.e2e.test_spawn_page import browser, login, shot  # noqa: F401 - the fixtures
from tests.slurmtools import job_field, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.browser]

USER, SERVER = "bob", "recent"


def end_texts(runtime: datetime.timedelta) -> set[str]:
    """What the form may say for a server with ``runtime`` started now (this minute or the next)."""
    texts = set()
    for minutes in (0, 1):
        now = datetime.datetime.now() + datetime.timedelta(minutes=minutes)
        end = now + runtime
        day = {0: "today", 1: "tomorrow"}.get((end.date() - now.date()).days, f"on {end:%Y-%m-%d}")
        texts.add(f"{end:%H:%M} {day}")
    return texts


def recent_row(page, server):
    return page.locator(f"#dkrz-recent tr.dkrz-recent-row[data-server-name='{server}']").first


def recent_api(hub, user):
    if hub.api("GET", f"/users/{user}").status_code == 404:
        hub.api("POST", f"/users/{user}")
    token = hub.api("POST", f"/users/{user}/tokens",
                    json={"scopes": [f"read:servers!user={user}"], "expires_in": 600}).json()["token"]
    response = requests.get(f"{hub.api_url}/dkrzspawner/recent", headers={"Authorization": f"token {token}"},
                            timeout=30)
    assert response.ok, response.text
    return response.json()["jobs"]


def test_a_removed_server_is_listed_with_how_it_ended_and_starts_again_with_its_options(hub, login):
    page = login(USER)
    page.goto(f"{hub.public_url}/hub/spawn/{USER}/{SERVER}")
    page.check("#dkrz-preset-shared-2")
    # the form says when such a server would end, and follows the runtime as it is typed
    page.fill("#dkrz-preset-runtime", "02:00:00")
    assert page.locator("#dkrz-ends-preset").inner_text() in end_texts(datetime.timedelta(hours=2))
    page.fill("#dkrz-preset-runtime", "00:10:00")
    assert page.locator("#dkrz-ends-preset").inner_text() in end_texts(datetime.timedelta(minutes=10))
    assert page.locator("#dkrz-ends-preset-line").is_visible()
    shot(page, "spawn-ends-at")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf".*/user/{USER}/{SERVER}/.*"), timeout=120_000)
    job_id = hub.wait_ready(USER, SERVER)["state"]["job_id"]
    assert job_field(job_id, "%P|%C|%l") == "shared|2|10:00"

    # the home page's walltime left counts down, and warns in the last 15 minutes
    page.goto(f"{hub.public_url}/hub/home")
    left = page.locator(f"tr.dkrz-job-row[data-server-name='{SERVER}'] .dkrz-time-left")
    first = left.inner_text()
    assert recent_row(page, SERVER).locator("time").count() == 2, "submitted and started, while it runs"
    assert re.fullmatch(r"\d+ min \d+ s", first), first
    assert "dkrz-time-short" in left.get_attribute("class")
    page.wait_for_function("([cell, was]) => cell.textContent !== was", arg=[left.element_handle(), first])
    shot(page, "home-countdown")

    # stopped and removed: the server is gone, its job is still listed, with how it ended
    response = hub.api("DELETE", hub.server_path(USER, SERVER), json={"remove": True})
    assert response.status_code in (202, 204), response.text
    wait_for(lambda: SERVER not in hub.servers(USER), timeout=90, what="the server to be removed")
    page.goto(f"{hub.public_url}/hub/home")
    row = recent_row(page, SERVER)
    assert row.get_attribute("data-job-id") == job_id
    assert "preset shared: 2 cores, 5 GB memory, runtime 10 min, account ab0000" in row.inner_text()
    assert "The job was cancelled" in row.locator(".dkrz-recent-end").inner_text()
    assert re.fullmatch(r"\d+\.\d\d", row.locator(".dkrz-recent-core-hours").inner_text())

    # a job that failed: how it ended and the last lines of its output ("broken": no job environment)
    hub.spawn(USER, "broken", {"preset": "shared"})
    wait_for(lambda: any(job["server"] == "broken" and job["ended"] for job in recent_api(hub, USER)),
             timeout=120, what="the failed job in the recent jobs")
    page.goto(f"{hub.public_url}/hub/home")
    broken = recent_row(page, "broken")
    assert "failed" in broken.locator(".dkrz-recent-end").inner_text().lower()
    broken.locator("summary").click()
    assert "/nonexistent/env" in broken.locator(".dkrz-recent-tail pre").inner_text()
    shot(page, "home-recent")

    # the API says the same, for the calling user alone; a restarted hub still knows it all
    hub.stop()
    hub.start()
    jobs = {job["job_id"]: job for job in recent_api(hub, USER)}
    mine = jobs[job_id]
    assert mine["server"] == SERVER and mine["state"] == "CANCELLED" and mine["ended"] and mine["started"]
    assert mine["user_options"] == {"preset": "shared", "cores": 2, "runtime": "00:10:00", "account": "ab0000"}
    assert isinstance(mine["core_hours"], float)
    assert job_id not in {job["job_id"] for job in recent_api(hub, "alice")}, "only the calling user's own jobs"

    # "Start again": the form of that server, filled in with those options; nothing starts until Start
    page = login(USER)
    page.goto(f"{hub.public_url}/hub/home")
    recent_row(page, SERVER).locator(".dkrz-start-again").click()
    page.wait_for_url(re.compile(rf".*/hub/spawn/{USER}/{SERVER}\?.*opt-preset=shared.*"))
    assert page.locator("#dkrz-link-notice").is_visible()
    assert page.locator("#dkrz-preset-shared-2").is_checked()
    assert page.locator("#dkrz-preset-runtime").input_value() == "00:10:00"
    assert page.locator("#dkrz-account").input_value() == "ab0000"
    shot(page, "start-again")
    assert not hub.server(USER, SERVER) or not hub.server(USER, SERVER).get("pending")

    # a new named server starts from the user's most recent options (any server)
    page.goto(f"{hub.public_url}/hub/spawn/{USER}/fresh")
    assert "most recent server, broken" in page.locator(".dkrz-remembered").inner_text()
    assert page.locator("#dkrz-preset-shared-1").is_checked()
