"""The sweep page in a real browser (Chromium through Playwright) on the real service (the
sweeps tests' ``sweep_service``: PostgreSQL, Redis, ``dljobs api`` and two workers): log in with
the token URL, open a coarse_to_fine sweep's page while it runs, and see it end with every trial
on the leaderboard, one curve per trial and both stages' ranges.  The screenshot is kept in the
test's tmp folder."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from dljobs.lifecycle import SWEEP_FINISHED, SweepStatus
from tests.conftest import require_service
from tests.e2e.conftest import small_spec

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_the_page_of_a_running_sweep_fills_in_until_it_has_ended(sweep_service, tmp_path):
    require_service(Path(CHROMIUM).exists(), f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service(False, "Playwright for Python (the test extra)")
    svc = sweep_service
    body = {"name": "page-c2f", "base": small_spec("page-c2f", epochs=1),
            "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": {"type": "coarse_to_fine", "stages": [{"trials": 4, "epochs": 1}, {"trials": 2, "epochs": 2}]},
            "metric": "val_accuracy", "max_concurrent": 2}
    created = svc.http.post(f"{svc.base_url}/api/v1/sweeps", json=body, timeout=30)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1200})
            page.goto(f"{svc.base_url}/?token={svc.token}")  # the login exchange sets the cookie
            page.goto(f"{svc.base_url}/sweeps/{sweep_id}")
            page.wait_for_selector("body[data-loaded='1']", timeout=30_000)
            deadline = time.monotonic() + 240
            while page.inner_text("#status") not in SWEEP_FINISHED and time.monotonic() < deadline:
                page.wait_for_timeout(500)
            page.wait_for_timeout(2500)  # the last refresh draws the last curves
            page.screenshot(path=str(tmp_path / "sweep-page.png"), full_page=True)
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
        finally:
            browser.close()
