"""Debian's Chromium driven by Playwright, for every browser test (the e2e pages and the JupyterLab extension)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: where the browser tests put their screenshots (`make screenshots` copies them into the docs)
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@contextlib.contextmanager
def chromium():
    """A headless Chromium; missing, it fails the test in CI and skips it with the reason elsewhere."""
    if not os.path.exists(CHROMIUM):
        message = "Debian's Chromium is missing: run `make env` (ci/make-env installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(reason=message)
    sync_api = pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def logged_in(context, public_url: str, user: str):
    """A new page of ``context`` logged in to the hub at ``public_url`` as ``user`` (the dummy authenticator
    takes any password), on the page the hub sends it to."""
    page = context.new_page()
    page.goto(f"{public_url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", "any password")
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/hub/login" not in url)
    return page
