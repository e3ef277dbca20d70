"""A hundred event streams on one API process, each complete and in order, while other requests answer.

The API runs as ``dljobs api`` runs it (the front door, gunicorn gthread, one process)
on PostgreSQL; the scenario is ``bench.streams.many_streams`` (ten jobs with ten viewers
each, progress written as a worker writes it, ``/healthz`` and the job list polled from
a process of its own).  The test asserts what each stream got; the latency figures are
printed (p50, p99), not asserted: speed lives in bench/ (``python -m bench.streams``).
"""

from __future__ import annotations

import pytest

from bench.streams import many_streams
from dljobs import testsupport
from tests.conftest import require_service
from tests.e2e.conftest import service_env, serving_api

pytestmark = [pytest.mark.service, pytest.mark.slow]

JOBS = 10
VIEWERS_PER_JOB = 10  # 100 streams
REPORTS = 60


@pytest.fixture
def api_on_postgres(tmp_path):
    """``dljobs api`` (one gunicorn process) on a fresh PostgreSQL database; no worker."""
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as db_url:
        # one token opens all hundred streams: its own limit (16 by default) raised
        env = service_env(tmp_path / "data", database_url=db_url, max_streams_per_token=200)
        with serving_api(tmp_path, env, db_url) as service:
            yield service


def test_a_hundred_streams_each_complete_and_in_order_while_other_requests_answer(api_on_postgres):
    service = api_on_postgres
    figures = many_streams(service.base_url, service.token, service.session, JOBS, VIEWERS_PER_JOB, REPORTS)
    assert figures["errors"] == [], f"{figures['errors'][:3]}\n{service.procs.logs()}"
    assert figures["streams"] == JOBS * VIEWERS_PER_JOB
    for job_id, viewers in figures["events"].items():
        logged = figures["logged"][job_id]
        assert len(viewers) == VIEWERS_PER_JOB
        for events in viewers:
            assert [(e["id"], e["event"]) for e in events] == logged
            assert [e["data"]["iteration"] for e in events if e["event"] == "progress"] == list(
                range(1, REPORTS + 1))
            assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"
    assert figures["incomplete"] == 0
    assert figures["healthz_requests"] >= 10 and figures["joblist_requests"] >= 10
    print(f"\n{figures['streams']} open streams: GET /healthz p50 {figures['healthz_p50_ms']} ms, "
          f"p99 {figures['healthz_p99_ms']} ms; GET /api/v1/jobs?limit=20 p50 {figures['joblist_p50_ms']} ms, "
          f"p99 {figures['joblist_p99_ms']} ms ({figures['joblist_requests']} requests each)")
