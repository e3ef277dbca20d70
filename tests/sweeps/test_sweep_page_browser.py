"""The sweep page in a real browser (the browser tests' Debian chromium through Playwright) on
the real service (the sweeps tests' ``sweep_service``: PostgreSQL, Redis, ``dljobs api`` and two
workers): log in with the token URL, open a coarse_to_fine sweep's page while it runs, and see
it end with every trial on the leaderboard, one curve per trial and both stages' ranges.  The
screenshot goes with the browser tests' (``test-output/browser/``)."""

from __future__ import annotations

import time

import pytest

from dljobs.lifecycle import SWEEP_FINISHED, SweepStatus
from tests.browser.conftest import browser, screenshots  # noqa: F401  fixtures, found by name
from tests.e2e.conftest import small_spec

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.browser]


def test_the_page_of_a_running_sweep_fills_in_until_it_has_ended(sweep_service, browser, screenshots):  # noqa: F811
    svc = sweep_service
    body = {"name": "page-c2f", "base": small_spec("page-c2f", epochs=1),
            "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": {"type": "coarse_to_fine", "stages": [{"trials": 4, "epochs": 1}, {"trials": 2, "epochs": 2}]},
            "metric": "val_accuracy", "max_concurrent": 2}
    created = svc.http.post(f"{svc.base_url}/api/v1/sweeps", json=body, timeout=30)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=svc.base_url)
    try:
        page = context.new_page()
        script_errors: list[str] = []
        page.on("pageerror", lambda exc: script_errors.append(str(exc)))
        page.goto(f"/?token={svc.token}")  # the login exchange sets the cookie
        page.goto(f"/sweeps/{sweep_id}")
        page.wait_for_selector("body[data-loaded='1']", timeout=30_000)
        deadline = time.monotonic() + 240
        while page.inner_text("#status") not in SWEEP_FINISHED and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        page.wait_for_timeout(2500)  # the last refresh draws the last curves
        page.screenshot(path=str(screenshots / "sweep-page.png"), full_page=True)
        assert page.inner_text("#status") == SweepStatus.SUCCEEDED, svc.procs.logs()
        assert page.inner_text("#method") == "coarse_to_fine"
        rows = page.query_selector_all("#leaderboard tbody tr")
        assert len(rows) == 6
        assert [row.get_attribute("class") for row in rows] == ["best"] + [None] * 5
        answer = svc.http.get(f"{svc.base_url}/api/v1/sweeps/{sweep_id}", timeout=30).json()
        assert rows[0].get_attribute("data-job") == answer["best_job_id"] == answer["leaderboard"][0]["job_id"]
        # one curve for every trial that completed an epoch (a diverged one may have none), best first
        with_epochs = [row["job_id"] for row in answer["leaderboard"] if row["epochs"] > 0]
        assert page.get_attribute("#chart", "data-series").split() == with_epochs
        labels = page.evaluate("document.getElementById('chart').plot.series.slice(1).map(s => s.label)")
        assert [label.split()[1] for label in labels] == [job_id[:8] for job_id in with_epochs]
        stages = page.query_selector_all("#stages tbody tr")
        assert len(stages) == 2
        assert all("loguniform" in stage.inner_text() for stage in stages)
        assert not page.is_visible("#error")
        assert script_errors == []
    finally:
        context.close()
