"""The browser tests' pieces: Debian's chromium driven by Playwright, against ``dljobs up``.

The service is the end-to-end tests' ``embedded_service`` (``dljobs up --workers 2``, as a
person starts it).  The browser is ``/usr/bin/chromium``, never one Playwright downloads:
on a laptop without it (or without the playwright package) the tests skip saying so; under
``CI=true`` they fail (``.ci/run`` installs chromium).  Screenshots go to
``test-output/browser/`` at the repository's root (git ignores it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.e2e.conftest import REPO, embedded_service  # noqa: F401  (the service the pages are served by)

CHROMIUM = Path("/usr/bin/chromium")

#: Where the screenshots are saved, for people (and CI's log) to look at.
SCREENSHOTS = REPO / "test-output" / "browser"


@pytest.fixture(scope="module")
def browser():
    """A headless chromium (Debian's) through Playwright's sync API."""
    require_service(importlib.util.find_spec("playwright") is not None,
                    "the playwright package is not installed (pip install -e '.[test]')")
    require_service(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    # deferred: playwright only for the browser tests, after the skip above
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def page(browser, embedded_service):  # noqa: F811  (the fixture imported above)
    """A fresh browser context (no cookie yet) on the service, 1280 px wide."""
    # bypass_csp: Playwright's wait_for_function compiles its predicate in the page, which the
    # pages' Content-Security-Policy (script-src 'self', no eval) forbids; the pages' own
    # scripts are files of this origin and run the same either way
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  base_url=embedded_service.base_url, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.script_errors = errors
    try:
        yield page
    finally:
        context.close()
