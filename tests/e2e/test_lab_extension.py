"""The JupyterLab extension in a JupyterLab that the hub spawned as a Slurm job, in a real browser: a
Python-via-Slurm kernel made through the launcher's dialog (a refused value first: its message next to the
field, nothing made), a notebook with it printing its own SLURM_JOB_ID (not the server's), its allocation in
the Slurm panel, the kernel shut down and the allocation gone from squeue and the panel; the status bar's
countdown is the job's real time left, and the notification before the end appears for a short server.
Screenshots: test-artifacts/screenshots/lab-e2e-*.png."""

from __future__ import annotations

import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from tests.e2e.test_spawn_page import browser, login, shot  # noqa: F401 - the fixtures
from tests.slurmtools import job_field, slurm, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, pytest.mark.browser]

SERVER, KERNEL = "labext", "e2e-lab-kernel"
#: where the extension lists alice's conda environments (a conda install's envs/ folder in her home)
CONDA_HOME = Path(pwd.getpwnam("alice").pw_dir) / "miniconda3"


def kernel_jobs(name: str) -> list[str]:
    """The ids of alice's queued or running allocations of kernel ``name``."""
    return slurm("squeue", "-h", "-u", "alice", "-n", f"jupyter-kernel-{name}", "-o", "%i").split()


def seconds(text: str) -> int:
    """Slurm's time left, [D-][H:]M:SS, as seconds."""
    days, _, clock = text.rpartition("-")
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return int(days or 0) * 86400 + total


def test_a_slurm_kernel_from_the_launcher_runs_in_its_own_allocation(hub, login):
    # a short server: 10 minutes, so the notification of 15 minutes before the end shows at once
    options = {"preset": "shared", "cores": 1, "runtime": "00:10:00"}
    assert hub.spawn("alice", SERVER, options=options).status_code in (201, 202)
    hub.wait_ready("alice", SERVER, timeout=180)
    server_job = job_field_of_server()
    api = f"{hub.public_url}/user/alice/{SERVER}/dkrzspawner/api"
    contents = f"{hub.public_url}/user/alice/{SERVER}/api/contents"
    token = {"Authorization": f"token {hub.user_token('alice')}"}
    home_before = notebooks(contents, token)
    page = login("alice")
    try:
        page.goto(f"{hub.public_url}/user/alice/{SERVER}/lab")
        page.wait_for_selector(".jp-Launcher", timeout=120_000)

        # the countdown is the job's real time left
        status = page.locator("#dkrz-slurm-statusbar")
        status.wait_for(state="visible")
        assert status.inner_text().startswith(f"Slurm job {server_job} on ")
        left = job_field(server_job, "%L")
        assert abs(int(status.get_attribute("data-seconds-left")) - seconds(left)) <= 10, left
        toast = page.locator(".Toastify__toast", has_text="Your server's Slurm job ends in")
        toast.wait_for()
        assert "unsaved work is lost" in toast.inner_text()
        toast.locator("button").first.click()  # closed: it would hide the launcher's cards

        section = page.locator(".jp-Launcher-section", has_text="Slurm kernels")
        section.locator(".jp-LauncherCard", has_text="Python via Slurm").click()
        dialog = page.locator(".dkrz-kernel-dialog")
        dialog.locator("input[name=name]").fill(KERNEL)
        dialog.locator("input[name=display_name]").fill("E2E via Slurm")
        dialog.locator("input[name=cores]").fill("99")
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        refusal = page.locator(".dkrz-field-error[data-field=cores]")
        refusal.wait_for(state="visible")
        assert refusal.inner_text().startswith("Cores must be one of")
        assert KERNEL not in [k["name"] for k in requests.get(f"{api}/kernels", headers=token).json()["kernels"]]
        shot(page, "lab-e2e-refused")
        dialog.locator("input[name=cores]").fill("1")
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        dialog.wait_for(state="detached")

        # the new kernel is in the launcher at once; a notebook with it runs in an allocation of its own
        page.locator(".jp-LauncherCard[data-category=Notebook]", has_text="E2E via Slurm").click()
        kernel_job = run_cell(page, "import os; print(os.environ['SLURM_JOB_ID'])")
        assert re.fullmatch(r"\d+", kernel_job) and kernel_job != server_job
        assert kernel_jobs(KERNEL) == [kernel_job]

        status.click()  # opens the Slurm panel
        allocation = page.locator(f"#dkrz-slurm-panel .dkrz-allocation[data-job-id='{kernel_job}']")
        allocation.wait_for()
        assert "RUNNING" in allocation.inner_text() and "E2E via Slurm" in allocation.inner_text()
        shot(page, "lab-e2e-panel")

        # shut the kernel down: the allocation ends, in squeue and in the panel
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        page.locator(".lm-Menu-itemLabel", has_text="Shut Down Kernel").first.click()
        wait_for(lambda: not kernel_jobs(KERNEL), timeout=90, what=f"allocation {kernel_job} to end")
        allocation.wait_for(state="detached", timeout=30_000)
    except Exception:
        shot(page, "lab-e2e-failure")
        raise
    finally:
        requests.delete(f"{api}/kernels/{KERNEL}", headers=token, timeout=30)
        for made in notebooks(contents, token) - home_before:  # the notebook the launcher made in alice's home
            requests.delete(f"{contents}/{made}", headers=token, timeout=30)
        leftover = kernel_jobs(KERNEL)
        if leftover:
            slurm("scancel", *leftover, check=False)


@pytest.fixture
def conda_env():
    """A conda-like environment of alice's in ~/miniconda3/envs/ (a venv with conda-meta/ that sees the job side's
    ipykernel through a .pth file)."""
    prefix = CONDA_HOME / "envs" / "e2e-lab-conda"
    if CONDA_HOME.exists():
        pytest.fail(f"{CONDA_HOME} exists already: this test makes and removes it")
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for argv in (["/usr/bin/python3", "-m", "venv", "--without-pip", str(prefix)],
                 ["/bin/sh", "-c", f"echo {sysconfig.get_path('purelib')} > {site}/job-side.pth"],
                 ["/bin/mkdir", str(prefix / "conda-meta")]):
        subprocess.run(["sudo", "-n", "-u", "alice", *argv], check=True, capture_output=True, cwd="/tmp")
    yield prefix
    shutil.rmtree(CONDA_HOME, ignore_errors=True)


def run_cell(page, code: str) -> str:
    """Type ``code`` into the open notebook's first cell, run it, and return its output's text (an execution sent
    while the kernel's websocket still connects can be lost: sent again, three times at most)."""
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=180_000)
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.type(code)
    output = page.locator(".jp-OutputArea-output").first
    for attempt in range(3):
        cell.click()
        page.keyboard.press("Shift+Enter")
        try:
            output.wait_for(timeout=20_000)
            break
        except Exception:
            if attempt == 2:
                raise
    return output.inner_text().strip()


def test_a_conda_via_slurm_kernel_from_a_listed_environment(hub, login, conda_env):
    name, display = "e2e-lab-conda", "E2E conda via Slurm"
    assert hub.spawn("alice", SERVER, options={"preset": "shared", "cores": 1}).status_code in (201, 202)
    hub.wait_ready("alice", SERVER, timeout=180)
    api = f"{hub.public_url}/user/alice/{SERVER}/dkrzspawner/api"
    contents = f"{hub.public_url}/user/alice/{SERVER}/api/contents"
    token = {"Authorization": f"token {hub.user_token('alice')}"}
    home_before = notebooks(contents, token)
    listed = requests.get(f"{api}/offer", headers=token, timeout=30).json()["environments"]
    assert {"path": str(conda_env), "kind": "conda", "name": "e2e-lab-conda"} in listed
    page = login("alice")
    try:
        page.goto(f"{hub.public_url}/user/alice/{SERVER}/lab")
        page.wait_for_selector(".jp-Launcher", timeout=120_000)
        page.locator(".jp-Launcher-section", has_text="Slurm kernels").locator(
            ".jp-LauncherCard", has_text="Conda via Slurm").click()
        dialog = page.locator(".dkrz-kernel-dialog")
        dialog.locator("input[name=name]").fill(name)
        dialog.locator("input[name=display_name]").fill(display)
        dialog.locator("select[name=environment]").select_option(str(conda_env))
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        dialog.wait_for(state="detached")
        page.locator(".jp-LauncherCard[data-category=Notebook]", has_text=display).click()
        where, job = run_cell(page, "import os; print(os.environ['CONDA_PREFIX'], os.environ['SLURM_JOB_ID'])").split()
        assert where == str(conda_env) and kernel_jobs(name) == [job]
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        page.locator(".lm-Menu-itemLabel", has_text="Shut Down Kernel").first.click()
        wait_for(lambda: not kernel_jobs(name), timeout=90, what=f"allocation {job} to end")
    except Exception:
        shot(page, "lab-e2e-conda-failure")
        raise
    finally:
        requests.delete(f"{api}/kernels/{name}", headers=token, timeout=30)
        for made in notebooks(contents, token) - home_before:
            requests.delete(f"{contents}/{made}", headers=token, timeout=30)
        leftover = kernel_jobs(name)
        if leftover:
            slurm("scancel", *leftover, check=False)


def notebooks(contents: str, token: dict) -> set[str]:
    """The notebooks in the server's root folder (alice's home)."""
    listing = requests.get(contents, headers=token, timeout=30).json()["content"]
    return {entry["path"] for entry in listing if entry["type"] == "notebook"}


def job_field_of_server() -> str:
    """The job id of alice's server SERVER."""
    (job_id,) = slurm("squeue", "-h", "-u", "alice", "-n", f"jupyterhub-{SERVER}", "-o", "%i").split()
    return job_id
