"""The JupyterLab extension (labextension/) in a real browser: a plain `jupyter lab` as alice, with the
extension as `make env` installs it and a stand-in of the server extension (stub/dkrz_lab_stub.py, the REST
contract with canned answers), so the TypeScript half is tested without a hub or Slurm. Playwright drives
Debian's Chromium. Screenshots into test-artifacts/screenshots/ (lab-*.png)."""

from __future__ import annotations

import pwd
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.browsertools import SCREENSHOTS, chromium

pytestmark = [pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
STUB = Path(__file__).resolve().parent / "stub"
VENV_BIN = Path(sys.executable).parent
USER, TOKEN = "alice", "labext-test-token"


class Lab:
    """One `jupyter lab` process as alice on a port of its own, in throw-away Jupyter dirs."""

    def __init__(self, port: int, seconds_left: int, *, site_off: str = "", settings: dict | None = None):
        """``site_off``: the parts the stand-in's GET api/config switches off; ``settings``: the user's
        settings of the extension (schema/plugin.json)."""
        self.url = f"http://127.0.0.1:{port}"
        self.home = Path(tempfile.mkdtemp(prefix="dkrz-labext-"))
        account = pwd.getpwnam(USER)
        if settings is not None:
            where = self.home / "config" / "lab" / "user-settings" / "@dkrzspawner" / "lab"
            where.mkdir(parents=True)
            (where / "plugin.jupyterlab-settings").write_text(json.dumps(settings))
        subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(self.home)], check=True)
        env = {"DKRZ_STUB_OFF": site_off, "PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(self.home), "PYTHONPATH": str(STUB),
               "JUPYTER_CONFIG_DIR": f"{self.home}/config", "JUPYTER_DATA_DIR": f"{self.home}/data",
               "JUPYTER_RUNTIME_DIR": f"{self.home}/runtime", "DKRZ_STUB_SECONDS_LEFT": str(seconds_left)}
        self.log = open(self.home / "lab.log", "wb")
        self.process = subprocess.Popen(
            ["sudo", "-n", "-u", USER, "env", *(f"{k}={v}" for k, v in env.items()),
             str(VENV_BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--ServerApp.token={TOKEN}", "--ServerApp.jpserver_extensions={'dkrz_lab_stub': True, 'dkrzspawner.lab': False}",
             f"--ServerApp.root_dir={self.home}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.home)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/dkrzspawner/api/config", headers=self.headers, timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"jupyter lab did not answer: {(self.home / 'lab.log').read_text()[-3000:]}")

    headers = {"Authorization": f"token {TOKEN}"}

    def api(self, path):
        return requests.get(f"{self.url}/dkrzspawner/api/{path}", headers=self.headers, timeout=10).json()

    def stop(self):
        # the server runs under sudo as alice: ask sudo's child to stop through sudo itself (it relays SIGTERM)
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(reason=f"no user {USER}: run `make cluster` (ci/slurm-up makes the demo users)")
    listed = subprocess.run([str(VENV_BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True)
    assert "@dkrzspawner/lab" in listed.stdout + listed.stderr, "the extension is not installed: run `make env`"
    with chromium() as launched:
        yield launched


def open_lab(browser, lab):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{lab.url}/lab?token={TOKEN}")
    page.wait_for_selector(".jp-Launcher")
    return context, page


def test_launcher_dialog_statusbar_panel(browser):
    lab = Lab(18900, seconds_left=20000)
    context, page = open_lab(browser, lab)
    try:
        walk_through(page, lab)
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / "lab-failure.png"))
        print("errors shown:", page.locator(".dkrz-field-error:not([hidden])").all_inner_texts())
        print("lab log:", (lab.home / "lab.log").read_text()[-4000:])
        raise
    finally:
        context.close()
        lab.stop()


def walk_through(page, lab):
    """Every part once, as a user would click through it."""
    if True:
        # the launcher's section: a card per template, and the two management cards
        section = page.locator(".jp-Launcher-section", has_text="Slurm kernels")
        section.wait_for()
        for label in ("Python via Slurm", "Conda via Slurm", "Manage Slurm kernels", "Register an environment"):
            assert section.locator(".jp-LauncherCard", has_text=label).count() == 1, label
        section.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "lab-launcher.png"))

        # a refused value: the server's sentence next to the field, nothing created, the dialog stays open
        section.locator(".jp-LauncherCard", has_text="Python via Slurm").click()
        dialog = page.locator(".dkrz-kernel-dialog")
        dialog.wait_for()
        dialog.locator("input[name=name]").fill("demo-slurm")
        dialog.locator("input[name=display_name]").fill("Demo via Slurm")
        dialog.locator("input[name=cores]").fill("8")
        dialog.locator("input[name=module-search]").fill("gcc")
        assert dialog.locator("select[name=modules] option:not([hidden])").all_inner_texts() == ["gcc/12.2.0"]
        dialog.locator("select[name=modules]").select_option("gcc/12.2.0")
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        error = page.locator(".dkrz-field-error[data-field=cores]")
        error.wait_for(state="visible")
        assert error.inner_text() == "Cores must be one of 1, 2, 4 for preset shared."
        assert lab.api("kernels") == {"kernels": []}
        page.locator(".jp-Dialog-content").screenshot(path=str(SCREENSHOTS / "lab-dialog-refused.png"))

        # a good value: created, and in the launcher at once (refreshSpecs, no reload)
        dialog.locator("input[name=cores]").fill("2")
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        dialog.wait_for(state="detached")
        created = lab.api("kernels")["kernels"]
        assert [k["name"] for k in created] == ["demo-slurm"]
        assert created[0]["options"] == {"preset": "shared", "cores": 2, "account": "bb1234",
                                         "modules": ["gcc/12.2.0"]}
        page.locator(".jp-LauncherCard", has_text="Demo via Slurm").first.wait_for()

        # edit it (PUT) and remove it (DELETE after a confirmation)
        section.locator(".jp-LauncherCard", has_text="Manage Slurm kernels").click()
        page.locator(".dkrz-kernel[data-kernel=demo-slurm] button.dkrz-edit").click()
        dialog.wait_for()
        dialog.locator("input[name=tasks]").fill("2")
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        dialog.wait_for(state="detached")
        assert lab.api("kernels")["kernels"][0]["options"]["tasks"] == 2
        section.locator(".jp-LauncherCard", has_text="Manage Slurm kernels").click()
        page.locator(".dkrz-kernel[data-kernel=demo-slurm] button.dkrz-remove").click()
        page.locator(".jp-Dialog button.jp-mod-warn", has_text="Remove").click()
        page.locator(".jp-LauncherCard[title='Demo via Slurm']").first.wait_for(state="detached")
        assert lab.api("kernels") == {"kernels": []}

        # a site's own template: the dialog starts from its options
        section.locator(".jp-LauncherCard", has_text="Long on shared").click()
        dialog.wait_for()
        assert dialog.locator("input[name=mode][value=partition]").is_checked()
        assert dialog.locator("input[name=cores]").input_value() == "2"
        assert dialog.locator("input[name=runtime]").input_value() == "03:00:00"
        page.locator(".jp-Dialog button.jp-mod-reject").click()
        dialog.wait_for(state="detached")

        # the status bar: job, node, a countdown that moves with the local clock
        status = page.locator("#dkrz-slurm-statusbar")
        status.wait_for(state="visible")
        first = int(status.get_attribute("data-seconds-left"))
        assert status.inner_text().startswith("Slurm job 123 on vm")
        page.wait_for_timeout(2100)
        assert int(status.get_attribute("data-seconds-left")) <= first - 2
        page.locator(".jp-StatusBar-Widget").screenshot(path=str(SCREENSHOTS / "lab-statusbar.png"))

        # the panel (its tab in the left side bar, or a click on the status bar item opens it): the job and the
        # allocations, pending with its reason; cancel one after confirming
        assert page.locator(".jp-SideBar.jp-mod-left li[data-id=dkrz-slurm-panel]").count() == 1
        status.click()
        panel = page.locator("#dkrz-slurm-panel")
        panel.wait_for(state="visible")
        panel.locator(".dkrz-allocation[data-job-id='456']").wait_for()
        assert "waiting for free cores" in panel.locator(".dkrz-allocation[data-job-id='456']").inner_text()
        panel.locator(".dkrz-job dd[data-key=partition]", has_text="shared").wait_for()
        page.screenshot(path=str(SCREENSHOTS / "lab-panel.png"))
        panel.locator(".dkrz-allocation[data-job-id='457'] button.dkrz-cancel").click()
        page.locator(".jp-Dialog button.jp-mod-warn", has_text="Cancel job").click()
        panel.locator(".dkrz-allocation[data-job-id='457']").wait_for(state="detached")
        assert [a["job_id"] for a in lab.api("allocations")["allocations"]] == ["456"]


def test_notification_before_the_end(browser):
    lab = Lab(18901, seconds_left=4 * 60 + 30)
    try:
        context, page = open_lab(browser, lab)
        toast = page.locator(".Toastify__toast", has_text="Slurm job ends in 5 minutes")
        toast.wait_for()
        assert "unsaved work is lost" in toast.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "lab-notification.png"))
        context.close()
    finally:
        lab.stop()


def test_parts_switched_off(browser):
    """The site switches the launcher section off (GET api/config), the user's settings the panel: only the
    status bar item is left."""
    lab = Lab(18902, seconds_left=20000, site_off="templates", settings={"panel": False})
    try:
        context, page = open_lab(browser, lab)
        page.locator("#dkrz-slurm-statusbar").wait_for(state="visible")
        page.wait_for_timeout(1000)
        assert page.locator(".jp-Launcher-section", has_text="Slurm kernels").count() == 0
        assert page.locator("#dkrz-slurm-panel").count() == 0
        assert page.locator("li[data-id=dkrz-slurm-panel]").count() == 0
        context.close()
    finally:
        lab.stop()
