"""``/metrics``: Prometheus' text format, parsed with prometheus-client's own parser.

Jobs move through their lives the way the service moves them (``dljobs.jobstore``:
create, claim, report, finish) and the figures follow at each scrape.
"""

from __future__ import annotations

import os

from prometheus_client.parser import text_string_to_metric_families

from api.context import session_factory
from dljobs import jobstore
from dljobs.lifecycle import JobStatus


def scrape(client) -> dict[str, dict[tuple, float]]:
    """``{sample name: {labels as sorted tuples: value}}`` of one scrape."""
    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _status(figures, status: JobStatus) -> float:
    return figures["dljobs_jobs"][(("status", status.value),)]


def test_figures_move_as_a_job_is_queued_runs_and_succeeds(app, client):
    with app.app_context():
        factory = session_factory()
    before = scrape(client)
    assert {labels[0][1] for labels in before["dljobs_jobs"]} == {s.value for s in JobStatus}
    assert before["dljobs_broker_up"][()] == 1
    assert before["dljobs_training_iterations_per_second"][()] == 0

    with factory() as session:
        job_id = jobstore.create_job(session, {"name": "m"}, {}, "m").id
    queued = scrape(client)
    assert _status(queued, JobStatus.QUEUED) == _status(before, JobStatus.QUEUED) + 1

    with factory() as session:
        attempt = jobstore.claim(session, job_id, "host", os.getpid(), 30)
        jobstore.report(session, job_id, attempt, progress={
            "epoch": 1, "epochs": 4, "iteration": 100, "iterations": 400, "percent": 25.0, "eta_s": 6.0})
    running = scrape(client)
    assert _status(running, JobStatus.RUNNING) == 1 and _status(running, JobStatus.QUEUED) == 0
    assert running["dljobs_job_iterations"][(("job_id", job_id),)] == 100
    assert running["dljobs_job_iterations_per_second"][(("job_id", job_id),)] == 50  # 300 left in 6 s
    assert running["dljobs_training_iterations_per_second"][()] == 50

    with factory() as session:
        assert jobstore.finish(session, job_id, attempt, JobStatus.SUCCEEDED)
    done = scrape(client)
    assert _status(done, JobStatus.SUCCEEDED) == 1 and _status(done, JobStatus.RUNNING) == 0
    succeeded = (("status", "succeeded"),)
    assert done["dljobs_job_duration_seconds_count"][succeeded] == 1
    assert done["dljobs_job_duration_seconds_bucket"][(("le", "+Inf"), ("status", "succeeded"))] == 1
    assert 0 <= done["dljobs_job_duration_seconds_sum"][succeeded] < 86400
    assert (("job_id", job_id),) not in done.get("dljobs_job_iterations", {})


def test_request_latency_is_labelled_by_route_not_by_path(client):
    for job_id in ("a1", "b2", "c3"):
        client.get(f"/api/v1/jobs/{job_id}")
    client.get("/healthz")
    figures = scrape(client)
    counts = figures["dljobs_api_request_duration_seconds_count"]
    assert counts[(("method", "GET"), ("route", "/api/v1/jobs/<job_id>"))] == 3
    assert counts[(("method", "GET"), ("route", "/healthz"))] == 1
    assert not any("a1" in value for labels in counts for _, value in labels)


def test_unknown_paths_and_methods_share_one_series(client, anon_client):
    for n in range(5):
        anon_client.get(f"/no/such/path/{n}")
        anon_client.open("/api/v1/jobs", method=f"BREW{n}")
    counts = scrape(client)["dljobs_api_request_duration_seconds_count"]
    assert counts[(("method", "GET"), ("route", "<unmatched>"))] == 5
    assert sum(v for labels, v in counts.items() if ("method", "OTHER") in labels) == 5
    assert not any(value.startswith("BREW") or "/no/such" in value for labels in counts for _, value in labels)


def test_the_queue_depth_counts_the_brokers_messages(app, client):
    """The API tests' app sends nothing itself; here two jobs go to its embedded (filesystem) broker."""
    settings = app.config["DLJOBS_SETTINGS"]
    settings.ensure_dirs()
    queue = settings.queue_name
    assert scrape(client)["dljobs_queue_depth"][(("queue", queue),)] == 0
    with app.app_context():
        factory = session_factory()
    for name in ("q1", "q2"):
        with factory() as session:
            job_id = jobstore.create_job(session, {"name": name}, {}, name).id
            jobstore.enqueue(job_id, settings, session)
    assert scrape(client)["dljobs_queue_depth"][(("queue", queue),)] == 2


def test_only_an_admin_token_reads_the_figures(owner_client, anon_client, problem):
    problem(owner_client.get("/metrics"), 403, "Authorization")
    assert anon_client.get("/metrics").status_code == 401
