"""The dashboard in a real browser against ``dljobs up``: log in with the token URL, submit
through the form (a field error shown beside its field first), watch the loss curve grow
while the job runs, cancel, rerun and cancel with the buttons, see a short job succeed,
open the compare view.

Screenshots: ``test-output/browser/`` (see tests/browser/conftest.py).
"""

from __future__ import annotations

import json

import pytest

from dljobs.lifecycle import JobStatus
from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.service]

#: Waits for the service (a loaded CI machine trains slowly): a bound, not a speed claim.
WAIT_MS = 180_000

DRAWN_POINTS = "document.getElementById('chart-loss').plot ? document.getElementById('chart-loss').plot.data[0].length : 0"
STATUS = "document.getElementById('job-status').dataset.status"

#: Epochs of the watched run: minutes of training, far more than the test needs before it cancels.
LONG_EPOCHS = 2000


def _field(page, path: str):
    return page.locator(f'.field[data-field="{path}"]')


def test_login_submit_watch_the_curve_grow_rerun_cancel_and_compare(page, embedded_service, screenshots):
    base = embedded_service.base_url
    # -- log in: the token URL sets the cookie and lands on the job list, without the token
    page.goto(f"/?token={embedded_service.token}")
    assert page.url == f"{base}/"
    page.wait_for_selector("#jobs-body tr")
    assert page.locator("header .who").inner_text().strip() != ""

    # -- the submit form starts from an example; a bad value comes back beside its field
    page.goto("/submit")
    page.select_option("#example", "digits_mlp")
    _field(page, "training.epochs").locator("input").fill("-3")
    page.click("#submit-button")
    error = _field(page, "training.epochs").locator(".field-error")
    error.wait_for(state="visible")
    page.wait_for_function("document.querySelector('.field.has-error') !== null")
    assert "training.epochs" not in error.inner_text() and error.inner_text().strip()
    assert page.locator("#form-problem").is_visible()
    page.screenshot(path=str(screenshots / "1-submit-field-error.png"), full_page=True)

    # a run far longer than the test: it is watched, then cancelled with the page's button
    _field(page, "name").locator("input").fill("browser-long")
    _field(page, "training.epochs").locator("input").fill(str(LONG_EPOCHS))
    _field(page, "training.batch_size").locator("input").fill("8")
    _field(page, "optimizer.lr").locator("input").fill("0.02")
    page.click("#submit-button")
    page.wait_for_url("**/jobs/*", timeout=WAIT_MS)
    long_id = page.url.rsplit("/", 1)[1]
    assert embedded_service.client().get(long_id)["name"] == "browser-long"

    # -- the curve grows while the job runs
    running = json.dumps(JobStatus.RUNNING.value)
    page.wait_for_function(f"{STATUS} === {running} && ({DRAWN_POINTS}) > 1", timeout=WAIT_MS)
    first = page.evaluate(DRAWN_POINTS)
    page.screenshot(path=str(screenshots / "2-job-running.png"), full_page=True)
    page.wait_for_function(f"({DRAWN_POINTS}) > {first}", timeout=WAIT_MS)
    assert page.evaluate(DRAWN_POINTS) > first
    page.wait_for_selector("#confusion-table", timeout=WAIT_MS)  # the first epoch ended
    assert page.locator("#confusion-table tr").count() == 11  # a header and 10 digits
    assert page.locator("table.model tbody tr.layer").count() >= 2
    assert page.evaluate(STATUS) == JobStatus.RUNNING.value  # all of it seen while it ran
    page.screenshot(path=str(screenshots / "3-job-curve-grown.png"), full_page=True)

    # -- cancel, rerun, cancel the rerun: the page's buttons (same-origin cookie writes)
    page.click("#btn-cancel")
    page.wait_for_function(f"{json.dumps([JobStatus.CANCELLED.value])}.includes({STATUS})", timeout=WAIT_MS)
    page.click("#btn-rerun")
    page.wait_for_url(lambda url: url.rstrip("/").rsplit("/", 1)[1] != long_id, timeout=WAIT_MS)
    rerun_id = page.url.rsplit("/", 1)[1]
    assert embedded_service.client().get(rerun_id)["rerun_of"] == long_id
    page.click("#btn-cancel")
    stopping = json.dumps([JobStatus.CANCELLING.value, JobStatus.CANCELLED.value])
    page.wait_for_function(f"{stopping}.includes({STATUS})", timeout=WAIT_MS)

    # -- a short job to its end: the download button opens up
    short_id = embedded_service.client().submit(_spec_of(long_id, embedded_service, lr=0.05))["id"]
    page.goto(f"/jobs/{short_id}")
    page.wait_for_function(f"{STATUS} === {json.dumps(JobStatus.SUCCEEDED.value)}", timeout=WAIT_MS)
    page.wait_for_selector("#confusion-table", timeout=WAIT_MS)
    page.wait_for_function("document.getElementById('btn-download').getAttribute('aria-disabled') === 'false'")
    page.screenshot(path=str(screenshots / "4-job-succeeded.png"), full_page=True)

    # -- the compare view: both curves, the fields that differ highlighted
    page.goto(f"/compare?jobs={long_id},{short_id}")
    page.wait_for_function("document.body.dataset.chartsDrawn === 'true'", timeout=WAIT_MS)
    differing = page.locator("#spec-table tr.differs th code").all_inner_texts()
    assert {"optimizer.lr", "training.epochs", "training.batch_size"} <= set(differing)
    assert "dataset.type" not in differing
    assert page.locator("#chart-loss .u-legend .u-series").count() == 3  # x and two jobs
    page.screenshot(path=str(screenshots / "5-compare.png"), full_page=True)
    assert page.script_errors == []


def _spec_of(job_id: str, service, lr: float) -> dict:
    """The stored request of a job, a short run at another learning rate."""
    spec = service.client().get(job_id)["spec"]
    spec["optimizer"]["lr"] = lr
    spec["training"]["epochs"] = 3
    spec["training"]["batch_size"] = 32
    spec["name"] = "browser-short"
    return spec


def test_pages_without_the_cookie_answer_the_login_hint(page, embedded_service):
    answer = page.goto("/submit")
    assert answer.status == 401
    body = answer.json()
    assert "login URL" in body["detail"] and body["errors"][0]["field"] == "cookie"
    assert REPO.exists()
