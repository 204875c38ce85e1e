"""Extending a running server (the drop-in ``extend``) from the home page and from JupyterLab's status bar, in a
real browser (Playwright driving Debian's Chromium) against a real hub and Slurm: the hub's account is made a
Slurm operator for this module alone (and made unprivileged again after it: the rest of the suite keeps an
unprivileged hub); Extend +1 h gives the job a new time limit in squeue and the countdown its new end at once; an
extension past the site's limit (``extend_max_runtime``) is refused with the sentence shown beside the button, or
in the dialog. In JupyterLab, the server extends itself with its own API token, whose custom scope reaches that
one server only (checked with such a token against another server).

The screenshots go to test-artifacts/screenshots/ (the user guide uses them: docs/user/servers.rst, lab.rst).
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import HUB_ACCOUNT, HUB_PORT, PROXY_API_PORT, PUBLIC_PORT
from tests.e2e.test_security import another_hub
from tests.e2e.test_spawn_page import browser, shot  # noqa: F401 - the fixture
from tests.browsertools import logged_in
from tests.slurmtools import job_field, slurm, wait_for

LAB_SERVER = "labtime"

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.browser]

USER, SERVER = "alice", "longer"
EXTEND_PORTS = (PUBLIC_PORT + 400, HUB_PORT + 400, PROXY_API_PORT + 400)


@pytest.fixture(scope="module")
def operator():
    """The hub's account as a Slurm operator (what extending needs), for this module only."""
    known = bool(slurm("sacctmgr", "-n", "-P", "show", "user", HUB_ACCOUNT).strip())
    if known:
        slurm("sacctmgr", "-i", "modify", "user", HUB_ACCOUNT, "set", "adminlevel=Operator")
    else:
        slurm("sacctmgr", "-i", "add", "user", HUB_ACCOUNT, "account=root", "adminlevel=Operator")
    try:
        yield
    finally:
        if known:
            slurm("sacctmgr", "-i", "modify", "user", HUB_ACCOUNT, "set", "adminlevel=None")
        else:
            slurm("sacctmgr", "-i", "delete", "user", f"name={HUB_ACCOUNT}")


@pytest.fixture(scope="module")
def extend_hub(hub, operator):
    extra = ("from dkrzspawner import dropins\n"
             'load_subconfig(dropins.path("extend"))\n'
             'c.DKRZSpawner.extend_max_runtime = {"shared": "02:00:00"}\n')
    with another_hub(hub, "extendhub", extra, EXTEND_PORTS) as started:
        yield started


def test_extend_on_the_home_page_moves_the_end_at_once_and_a_refusal_says_why(extend_hub, browser):  # noqa: F811
    response = extend_hub.spawn(USER, SERVER, {"preset": "shared", "cores": 1, "runtime": "00:30:00"})
    assert response.status_code in (201, 202), response.text
    job_id = extend_hub.wait_ready(USER, SERVER)["state"]["job_id"]
    assert job_field(job_id, "%l") == "30:00"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        page = logged_in(context, extend_hub.public_url, USER)
        row = page.locator(f"tr.dkrz-job-row[data-server-name='{SERVER}']")

        def extend_offered():  # once the hub's squeue poll has seen the job running
            page.goto(f"{extend_hub.public_url}/hub/home")
            return row.locator("form.dkrz-extend").count() == 1
        wait_for(extend_offered, timeout=60, interval=2, what="the Extend control on the home page")
        cell = row.locator(".dkrz-time-left")
        before = int(cell.get_attribute("data-ends-at"))

        row.locator("select[name=add]").select_option("01:00:00")
        row.locator("form.dkrz-extend button").click()
        message = row.locator(".dkrz-extend-message")
        page.wait_for_function("el => el.textContent !== ''", arg=message.element_handle())
        assert message.inner_text() == "Extended: time limit now 01:30:00."
        assert int(cell.get_attribute("data-ends-at")) == before + 3600, "the countdown's end moved at once"
        assert cell.inner_text().startswith("1 h "), cell.inner_text()
        assert job_field(job_id, "%l") == "1:30:00"
        shot(page, "home-extend")

        # another hour: past this hub's 2 hours for the shared partition, refused with the reason
        page.evaluate("el => { el.textContent = ''; }", message.element_handle())
        row.locator("form.dkrz-extend button").click()
        page.wait_for_function("el => el.textContent !== ''", arg=message.element_handle())
        refusal = message.inner_text()
        assert "this hub lets a server run" in refusal, refusal
        assert "text-danger" in message.get_attribute("class")
        assert int(cell.get_attribute("data-ends-at")) == before + 3600, "a refusal leaves the end as it was"
        assert job_field(job_id, "%l") == "1:30:00"
        shot(page, "home-extend-refused")
    finally:
        context.close()
        extend_hub.stop_server(USER, SERVER)  # its job is this hub's: the session hub's check after each test


def test_extend_from_the_jupyterlab_status_bar_with_the_servers_own_token(extend_hub, browser):  # noqa: F811
    response = extend_hub.spawn(USER, LAB_SERVER, {"preset": "shared", "cores": 1, "runtime": "00:30:00"})
    assert response.status_code in (201, 202), response.text
    job_id = extend_hub.wait_ready(USER, LAB_SERVER)["state"]["job_id"]

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        page = logged_in(context, extend_hub.public_url, USER)
        page.goto(f"{extend_hub.public_url}/user/{USER}/{LAB_SERVER}/lab")
        page.wait_for_selector(".jp-Launcher", timeout=120_000)
        status = page.locator("#dkrz-slurm-statusbar")
        button = status.locator("button.dkrz-statusbar-extend")
        button.wait_for(state="visible")
        before = int(status.get_attribute("data-seconds-left"))
        assert before <= 30 * 60

        button.click()
        dialog = page.locator(".jp-Dialog")
        dialog.locator("select[name=add]").select_option("01:00:00")
        shot(page, "lab-extend")
        dialog.locator("button.jp-mod-accept").click()
        dialog.wait_for(state="detached")
        toast = page.locator(".Toastify__toast", has_text="Extended: time limit now 01:30:00")
        toast.wait_for()
        assert f"job {job_id} ends at" in toast.inner_text()
        assert job_field(job_id, "%l") == "1:30:00"
        page.wait_for_function("el => Number(el.dataset.secondsLeft) > 3600", arg=status.element_handle())
        assert int(status.get_attribute("data-seconds-left")) >= before + 3600 - 60, "the countdown moved at once"

        # past this hub's 2 hours: the hub's sentence in the dialog, which stays open; nothing changes
        button.click()
        dialog.locator("button.jp-mod-accept").click()
        error = dialog.locator(".dkrz-field-error[data-field=add]")
        error.wait_for(state="visible")
        assert "this hub lets a server run at most 02:00:00" in error.inner_text(), error.inner_text()
        shot(page, "lab-extend-refused")
        dialog.locator("button.jp-mod-reject").click()
        assert job_field(job_id, "%l") == "1:30:00"
    finally:
        context.close()

    # the scope a server's token carries reaches that server only
    token = extend_hub.api("POST", f"/users/{USER}/tokens", json={
        "scopes": [f"custom:dkrzspawner:extend!server={USER}/{LAB_SERVER}"], "expires_in": 600}).json()["token"]
    headers = {"Authorization": f"token {token}"}
    other = requests.post(f"{extend_hub.api_url}/dkrzspawner/extend/{USER}/{SERVER}", json={"add": "00:30:00"},
                          headers=headers, timeout=60)
    assert other.status_code == 404, other.text
    elsewhere = requests.post(f"{extend_hub.api_url}/users/{USER}/servers/{SERVER}", headers=headers, timeout=60)
    assert elsewhere.status_code in (403, 404), "the scope starts nothing"
    extend_hub.stop_server(USER, LAB_SERVER)
