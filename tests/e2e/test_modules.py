"""Environment modules end to end: real Lmod on the real cluster, a real hub, the server's own environment.

The local cluster's module tree (ci/slurm-up): example/1.0 and 2.0 set DKRZ_EXAMPLE, tools/1.0 sets
DKRZ_TOOLS, broken/1.0 fails to load. The demo's ``prepost`` preset loads example/1.0.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from tests.e2e.test_spawn_page import browser, login, shot  # noqa: F401 (fixtures)
from tests.slurmtools import accounted_jobs, slurm, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]


def server_environment(user: str, job_id: str) -> dict[str, str]:
    """The environment of the Jupyter server process of ``job_id`` (read from /proc, as root)."""
    uid = int(slurm("id", "-u", user).strip())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid or b"singleuser" not in (proc / "cmdline").read_bytes():
                continue
            pairs = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)
        if env.get("SLURM_JOB_ID") == job_id:
            return env
    raise AssertionError(f"no Jupyter server process of job {job_id} found")


def since_now() -> str:
    return (datetime.datetime.now() - datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_preset_with_a_module_sets_its_variable_in_the_server(hub):
    assert hub.spawn("alice", "modpreset", options={"preset": "prepost"}).status_code in (201, 202)
    server = hub.wait_ready("alice", "modpreset")
    env = server_environment("alice", server["state"]["job_id"])
    assert env["DKRZ_EXAMPLE"] == "1.0"
    assert env["LOADEDMODULES"] == "example/1.0"


def test_an_advanced_request_loads_two_modules_in_the_order_given(hub):
    options = {"partition": "shared", "modules": ["tools/1.0", "example/2.0"]}
    assert hub.spawn("carol", "twomodules", options=options).status_code in (201, 202)
    server = hub.wait_ready("carol", "twomodules")
    env = server_environment("carol", server["state"]["job_id"])
    assert env["LOADEDMODULES"] == "tools/1.0:example/2.0"
    assert (env["DKRZ_TOOLS"], env["DKRZ_EXAMPLE"]) == ("1.0", "2.0")


def test_an_unknown_module_is_refused_before_sbatch(hub):
    since = since_now()
    response = hub.spawn("bob", "nosuchmodule", options={"partition": "shared", "modules": ["nosuch/1.0"]})
    assert response.status_code == 400, response.text
    assert response.json()["message"] == ("Modules: 'nosuch/1.0' is not a module of this cluster "
                                          "(see `module avail`).")
    assert accounted_jobs("bob", since) == [], "a refused request must not create a job"


def test_a_module_that_fails_to_load_fails_the_spawn_at_once_with_lmods_message(hub):
    response = hub.spawn("bob", "brokenmodule", options={"partition": "shared", "modules": ["broken/1.0"]})
    if response.status_code == 202:  # slower than the hub's slow_spawn_timeout: wait for the spawn to end
        wait_for(lambda: (hub.server("bob", "brokenmodule") or {}).get("pending") is None, timeout=120,
                 what="the spawn with a broken module to end")
        message = hub.api("GET", "/users/bob").text
    else:
        assert response.status_code >= 400, response.text
        message = response.json()["message"]
    assert "before its Jupyter server started" in message, message
    assert "broken/1.0 cannot be loaded" in message, "Lmod's own message, from the job's output"
    assert "did not start within" not in message, "a failed module load is not a timeout"


def test_the_advanced_tab_offers_the_clusters_modules_with_search(hub, login):  # noqa: F811
    page = login("carol")
    page.goto(f"{hub.public_url}/hub/spawn/carol/picker")
    page.click("label[for=dkrz-mode-advanced]")
    offered = page.locator("#dkrz-modules option").evaluate_all("options => options.map(o => o.value)")
    assert {"example/1.0", "example/2.0", "tools/1.0", "broken/1.0"} <= set(offered)
    page.fill("#dkrz-module-search", "tool")
    # the search hides what does not match; what is selected stays in view (carol's form starts from her last
    # options, which may have modules)
    visible = page.locator("#dkrz-modules option:not([hidden]):not(:checked)").evaluate_all(
        "os => os.map(o => o.value)")
    assert visible and all("tool" in name for name in visible)
    page.fill("#dkrz-module-search", "")
    page.select_option("#dkrz-modules", ["example/1.0", "tools/1.0"])
    shot(page, "spawn-modules")
    page.click("button[type=submit]")
    server = hub.wait_ready("carol", "picker")
    env = server_environment("carol", server["state"]["job_id"])
    assert env["LOADEDMODULES"] == "example/1.0:tools/1.0"
