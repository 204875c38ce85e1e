"""The spawn page in a real browser (Playwright driving Debian's Chromium) against the real hub and Slurm.

Screenshots go to test-artifacts/screenshots/ (the user guide uses them).
"""

from __future__ import annotations

import datetime
import re
import shutil

import pytest

from tests.browsertools import SCREENSHOTS, chromium, logged_in
from tests.slurmtools import job_field, slurm, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.browser]



@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def login(hub, browser):
    """``login(user)`` gives a page logged in to the hub as ``user`` (dummy authenticator, any password)."""
    contexts = []

    def login_as(user, javascript=True):
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, java_script_enabled=javascript)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return logged_in(context, hub.public_url, user)

    yield login_as
    for context in contexts:
        context.close()


def shot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, animations="disabled")


def account_choices(page) -> list[str]:
    return page.locator("#dkrz-account option").evaluate_all("options => options.map(o => o.value)")


def server_jobs(user: str, server: str = "") -> list[str]:
    """Queued or running jobs of one named server (by job name: other jobs of the user do not count)."""
    name = f"jupyterhub-{server or 'default'}"
    return slurm("squeue", "-h", "-u", user, "-n", name, "-o", "%i").split()


def recorded_server_jobs(user: str, server: str, since: str) -> list[str]:
    """Every job of one named server that sacct recorded since ``since``, ended ones included."""
    out = slurm("sacct", "-X", "-n", "-P", "-u", user, "-S", since, "--name", f"jupyterhub-{server}", "-o", "JobID")
    return out.split()


def node_size() -> tuple[int, int]:
    """Cores and MB of memory of the cluster's node, as Slurm reports them."""
    cpus, memory = slurm("sinfo", "-h", "-N", "-o", "%c %m").split()[:2]
    return int(cpus), int(memory)


def since_now() -> str:
    return (datetime.datetime.now() - datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")


def test_alice_sees_the_two_presets_and_only_her_account(hub, login):
    page = login("alice")
    page.goto(f"{hub.public_url}/hub/spawn")
    cards = page.locator(".dkrz-card legend")
    assert cards.all_inner_texts() == ["Shared", "Pre- and post-processing"]
    assert "internet access" in page.locator("#dkrz-card-prepost").inner_text()
    assert account_choices(page) == ["bb1234"]
    assert page.locator("#dkrz-account").input_value() == "bb1234"
    assert page.locator("#dkrz-mode-preset").is_checked()
    assert page.locator("#dkrz-preset-shared-1").is_checked(), "the first preset's first choice is the default"
    # memory follows the cores in each choice; the cost follows the choice
    assert "5 GB memory" in page.locator("label[for=dkrz-preset-prepost-2]").inner_text()
    page.check("#dkrz-preset-prepost-4")
    assert page.locator("#dkrz-cost-preset").inner_text() == "24 core-hours"
    page.check("#dkrz-preset-shared-1")
    # the table of free resources comes from Slurm
    rows = page.locator("#dkrz-availability tbody tr")
    assert rows.count() == 3
    total = int(slurm("sinfo", "-h", "-p", "shared", "-o", "%C").strip().split("/")[3])  # every node's CPUs
    assert re.fullmatch(rf"\d+ of {total}", page.locator("tr[data-partition=shared] .dkrz-free-cores").inner_text())
    shot(page, "spawn-presets")


def test_carol_sees_both_accounts_and_the_gpu_field_follows_the_partition(hub, login):
    page = login("carol")
    page.goto(f"{hub.public_url}/hub/spawn")
    assert account_choices(page) == ["bb1234", "ab0000"]
    assert page.locator("#dkrz-account").input_value() == "bb1234", "the default account is preselected"

    page.click("label[for=dkrz-mode-advanced]")
    assert page.locator("#dkrz-panel-advanced").is_visible()
    assert not page.locator("#dkrz-panel-preset").is_visible()
    page.select_option("#dkrz-partition", "shared")
    assert not page.locator("#dkrz-gpus").is_visible(), "shared offers no GPUs in the demo"
    assert "7 days" in page.locator("#dkrz-limits").inner_text()
    page.select_option("#dkrz-partition", "gpu")
    assert page.locator("#dkrz-gpus").is_visible()
    assert "2 GPUs per node" in page.locator("#dkrz-limits").inner_text()
    page.fill("#dkrz-cores", "4")
    page.fill("#dkrz-runtime", "02:30:00")
    assert page.locator("#dkrz-cost-advanced").inner_text() == "10 core-hours"
    cpus, memory = node_size()
    assert page.locator("#dkrz-memory").get_attribute("placeholder") == f"{4 * (memory // cpus)}M", \
        "the memory default follows the cores"
    shot(page, "spawn-advanced")


def test_the_form_works_without_javascript(hub, login):
    page = login("bob", javascript=False)
    page.goto(f"{hub.public_url}/hub/spawn/bob/nojs")
    assert account_choices(page) == ["ab0000"]
    assert page.locator("#dkrz-panel-preset").is_visible()
    assert not page.locator("#dkrz-panel-advanced").is_visible(), "CSS alone switches the tabs"
    page.click("label[for=dkrz-mode-advanced]")
    assert page.locator("#dkrz-panel-advanced").is_visible()
    assert page.locator("#dkrz-gpus").is_visible(), "without JavaScript the GPU field is always there"
    page.select_option("#dkrz-partition", "prepost")
    page.fill("#dkrz-gpus", "1")
    since = since_now()
    page.click("button[type=submit]")
    page.wait_for_load_state()
    error = page.locator("#dkrz-spawn-error").inner_text()
    assert error == "GPUs: partition prepost has none; choose gpu."
    assert page.url.split("?")[0].endswith("/hub/spawn/bob/nojs")
    assert recorded_server_jobs("bob", "nojs", since) == []


def test_alice_starts_prepost_with_two_cores_and_lands_in_jupyterlab(hub, login):
    page = login("alice")
    page.goto(f"{hub.public_url}/hub/spawn")
    page.check("#dkrz-preset-prepost-2")
    assert page.locator("#dkrz-cost-preset").inner_text() == "12 core-hours"
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    # No "official Jupyter news?" prompt: the job side's settings default (overrides.d/dkrzspawner.json)
    settings = page.request.get(
        f"{hub.public_url}/user/alice/lab/api/settings/@jupyterlab/apputils-extension:notification").json()
    defaults = {key: value["default"] for key, value in settings["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False
    page.wait_for_timeout(3000)  # the prompt would come right after Lab is restored
    assert page.get_by_text("official Jupyter news").count() == 0
    shot(page, "jupyterlab")

    (job_id,) = server_jobs("alice")
    assert job_field(job_id, "%P|%C|%m|%a|%j|%T") == "prepost|2|5000M|bb1234|jupyterhub-default|RUNNING"


def test_a_bad_advanced_request_shows_its_message_on_the_form_of_that_server(hub, login):
    page = login("bob")
    page.goto(f"{hub.public_url}/hub/spawn/bob/big")
    page.click("label[for=dkrz-mode-advanced]")
    page.select_option("#dkrz-partition", "gpu")
    page.fill("#dkrz-memory", "999G")
    since = since_now()
    page.click("button[type=submit]")
    page.wait_for_selector("#dkrz-spawn-error")
    message = page.locator("#dkrz-spawn-error").inner_text()
    memory = node_size()[1]
    assert message == f"Memory must be at most {memory}M ({memory / 1000:g} GB) per node in partition gpu."
    assert page.url.split("?")[0].endswith("/hub/spawn/bob/big"), "the form posts to the same server again"
    assert "your server big" in page.locator(".dkrz-server").inner_text(), "the form of the server asked for"
    assert page.locator("#dkrz-mode-advanced").is_checked(), "the request's other choices are kept"
    assert page.locator("#dkrz-partition").input_value() == "gpu"
    assert page.locator("#dkrz-memory").input_value() == "", "the refused value falls back to the default"
    shot(page, "spawn-refused")
    assert recorded_server_jobs("bob", "big", since) == [], "a refused request must not create a job"

    # a spawn URL gets the same validation, and its refusal is shown on the form
    page.goto(f"{hub.public_url}/hub/spawn/bob/big?opt-partition=shared&opt-gpus=1")
    assert page.locator("#dkrz-spawn-error").inner_text() == "GPUs: partition shared has none; choose gpu."
    assert recorded_server_jobs("bob", "big", since) == []


def test_a_second_named_server_remembers_its_own_last_options(hub, login):
    page = login("carol")
    # the first through a spawn URL (JupyterHub 6's opt- prefix), the second through the form
    page.goto(f"{hub.public_url}/hub/spawn/carol/first?opt-preset=shared&opt-cores=2&opt-account=ab0000")
    assert page.locator("#dkrz-link-notice").is_visible(), "a link fills in the form; the user confirms"
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/carol/first/.*"), timeout=120_000)
    first = hub.wait_ready("carol", "first")
    assert job_field(first["state"]["job_id"], "%P|%C|%a") == "shared|2|ab0000"

    page.goto(f"{hub.public_url}/hub/spawn/carol/second")
    assert page.locator("#dkrz-preset-shared-2").is_checked(), "a new server starts from the most recent options"
    assert page.locator("#dkrz-account").input_value() == "ab0000"
    page.select_option("#dkrz-account", "bb1234")
    page.click("label[for=dkrz-mode-advanced]")
    page.select_option("#dkrz-partition", "gpu")
    page.fill("#dkrz-cores", "3")
    page.fill("#dkrz-gpus", "1")
    page.fill("#dkrz-runtime", "01:30:00")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/carol/second/.*"), timeout=120_000)
    second = hub.wait_ready("carol", "second")
    assert job_field(second["state"]["job_id"], "%P|%C|%a|%l") == "gpu|3|bb1234|1:30:00"
    hub.stop_server("carol", "first")
    hub.stop_server("carol", "second")

    page.goto(f"{hub.public_url}/hub/spawn/carol/second")
    assert page.locator("#dkrz-mode-advanced").is_checked()
    assert page.locator("#dkrz-partition").input_value() == "gpu"
    assert page.locator("#dkrz-cores").input_value() == "3"
    assert page.locator("#dkrz-gpus").input_value() == "1"
    assert page.locator("#dkrz-runtime").input_value() == "01:30:00"
    assert page.locator("#dkrz-memory").input_value() == "", "left empty, it stays the partition's default"
    assert page.locator(".dkrz-remembered").is_visible()
    shot(page, "spawn-remembered")

    page.goto(f"{hub.public_url}/hub/spawn/carol/first")
    assert page.locator("#dkrz-mode-preset").is_checked()
    assert page.locator("#dkrz-preset-shared-2").is_checked()
    assert page.locator("#dkrz-account").input_value() == "ab0000"


@pytest.fixture
def gpus_taken():
    """Every node's two GPUs held by a job of root, so that a GPU request waits in the queue."""
    nodes = len(slurm("sinfo", "-h", "-N", "-p", "gpu", "-o", "%n").split())
    out = slurm("sbatch", "--parsable", "-p", "gpu", f"--nodes={nodes}", "--gpus-per-node=2", "-c", "1",
                "--mem=100M", "--time=00:05:00",
                "-o", "/dev/null", "-J", "e2e-gpu-holder", "--chdir=/tmp", "--wrap", "sleep 300")
    job_id = out.strip().split(";")[0]
    wait_for(lambda: job_field(job_id, "%T") == "RUNNING", timeout=30, what="the GPU holder to run")
    yield job_id
    slurm("scancel", job_id, check=False)


def test_the_pending_page_shows_the_estimate_and_stops_the_server_it_is_about(hub, login, gpus_taken):
    page = login("carol")
    page.goto(f"{hub.public_url}/hub/spawn/carol/waiting")
    page.click("label[for=dkrz-mode-advanced]")
    page.select_option("#dkrz-partition", "gpu")
    page.fill("#dkrz-gpus", "1")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/hub/spawn-pending/carol/waiting.*"))
    assert "expected to start" in page.locator("#dkrz-estimate").inner_text()
    page.wait_for_function("document.getElementById('progress-message').textContent.includes('waiting')")
    (job_id,) = server_jobs("carol", "waiting")
    assert job_field(job_id, "%T|%r") == "PENDING|Resources"
    shot(page, "spawn-pending")

    page.click("#stop-server-btn")
    wait_for(lambda: not server_jobs("carol", "waiting"), timeout=60, what="carol's pending job to be cancelled")
    wait_for(lambda: hub.server("carol", "waiting") is None, timeout=60, what="the named server to stop")


if shutil.which("sbatch") is None:  # pragma: no cover - the hub fixture fails more clearly first
    pytestmark.append(pytest.mark.skip(reason="Slurm is not installed"))


def test_a_spawn_link_fills_in_the_form_and_starts_nothing_until_the_user_confirms(hub, login):
    """A link on any web page (a top-level GET with the user's cookies) must not spend the user's budget."""
    page = login("carol")
    since = since_now()
    page.goto(f"{hub.public_url}/hub/spawn/carol/linked?opt-partition=gpu&opt-gpus=2&opt-cores=2"
              "&opt-runtime=01:00:00")
    assert page.locator("#dkrz-link-notice").inner_text() == (
        "This link has filled in the form below; check it, then press Start to submit the job.")
    assert page.locator("#dkrz-mode-advanced").is_checked()
    assert page.locator("#dkrz-partition").input_value() == "gpu"
    assert page.locator("#dkrz-gpus").input_value() == "2"
    assert page.locator("#dkrz-runtime").input_value() == "01:00:00"
    shot(page, "spawn-link")
    page.wait_for_timeout(2000)
    assert recorded_server_jobs("carol", "linked", since) == [], "a link alone submits no job"
    assert hub.server("carol", "linked") is None or not hub.server("carol", "linked").get("pending")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/carol/linked/.*"), timeout=120_000)
    server = hub.wait_ready("carol", "linked")
    job_id = server["state"]["job_id"]
    assert job_field(job_id, "%P|%C|%l") == "gpu|2|1:00:00"
    assert slurm("squeue", "-h", "-j", job_id, "-O", "tres-per-node").strip() == "gres:gpu:2"  # GPUs per node
    hub.stop_server("carol", "linked")
