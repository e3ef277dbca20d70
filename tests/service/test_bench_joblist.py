"""bench/joblist.py: the scale figures, on a small run against real PostgreSQL and ``dljobs api``."""

from __future__ import annotations

import json

import pytest

from bench import joblist
from dljobs import testsupport
from tests.conftest import require_service

KEYS = {"joblist_100k_p50_ms", "joblist_100k_p95_ms", "joblist_100k_owner_p95_ms",
        "joblist_100k_status_p95_ms", "joblist_100k_status_failed_p95_ms", "chart_1m_points_ms",
        "chart_1m_points_p95_ms", "joblist_page_100k_p95_ms", "metrics_scrape_100k_p50_ms"}


def test_the_bulk_insert_stores_every_job_and_point_with_the_statuses_drawn():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    from dljobs.db.migrate import upgrade

    with testsupport.fresh_postgres_database() as url:
        upgrade(url)
        job_id = joblist.insert_jobs(url, 5000)
        joblist.insert_metric_points(url, job_id, 3000)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                by_status = dict(conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all())
                steps = conn.execute(text("SELECT count(*), min(step), max(step) FROM metric_points "
                                          "WHERE job_id = :j"), {"j": job_id}).one()
        finally:
            engine.dispose()
    assert sum(by_status.values()) == 5000
    assert by_status["succeeded"] > by_status["failed"] > by_status.get("running", 0)
    assert tuple(steps) == (3000, 0, 2999)


@pytest.mark.service
def test_a_small_run_measures_every_figure_through_the_api():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    figures = joblist.run(jobs=500, points=3000, requests_n=5)
    assert KEYS <= set(figures) and figures["jobs"] == 500 and figures["points"] == 3000
    assert all(figures[k] > 0 for k in KEYS)
    text = joblist.table(figures)
    assert "GET /jobs?status=running,queued" in text and "3,000 points" in text


def test_the_figures_are_merged_into_the_results_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"service": {"submit_load": {"jobs": 1}}, "networks": {}}))
    joblist.write_results({"jobs": 7}, path)
    assert json.loads(path.read_text()) == {"service": {"submit_load": {"jobs": 1}, "joblist": {"jobs": 7}},
                                            "networks": {}}
    assert "skipped" in joblist.table(None)


def test_the_streams_figures_are_tabled_and_merged(tmp_path):
    from bench import streams

    figures = {"streams": 100, "incomplete": 0, "errors": [], "healthz_p50_ms": 8.1, "healthz_p99_ms": 38.2,
               "healthz_requests": 172, "joblist_p50_ms": 11.7, "joblist_p99_ms": 45.2, "joblist_requests": 172}
    text = streams.table(figures)
    assert "100 event streams on one API process (0 incomplete, 0 errors)" in text
    assert "p99    38.2 ms" in text and "p99    45.2 ms" in text
    path = tmp_path / "results.json"
    streams.write_results(figures, path)
    assert json.loads(path.read_text()) == {"service": {"streams": figures}}
    assert "skipped" in streams.table(None)
