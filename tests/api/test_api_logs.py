"""Job logs: lines a job's run logs are stored by ``dljobs.joblogs`` and paged by ``GET /jobs/<id>/logs``.

The lines are written the way a worker writes them: ``joblogs.capture`` around code that
logs through the standard ``logging`` module, into the app's database.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from api.context import session_factory
from api.logs import SETTLE_S
from dljobs import joblogs, jobstore
from dljobs.db.models import Job, JobLog, utcnow
from dljobs.lifecycle import JobStatus
from dljobs.logging_json import JsonLineFormatter

API = "/api/v1"
log = logging.getLogger("dljobs.runner")  # a logger a worker's lines come from


@pytest.fixture
def factory(app):
    with app.app_context():
        return session_factory()


def _job(factory, owner: str | None = None) -> str:
    with factory() as session:
        job = jobstore.create_job(session, {"name": "logs"}, {}, "logs", owner=owner)
        return job.id


def _run_logging(factory, job_id: str, lines: int) -> None:
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        with joblogs.capture(job_id, factory, flush_s=0.05):
            for i in range(lines):
                log.info("line %d of %s", i, "the job")
            log.debug("not stored: below INFO")
            log.warning("a warning")
    finally:
        logging.getLogger().setLevel(previous)


def _finish(factory, job_id: str, ago_s: float) -> None:
    with factory() as session:
        job = session.get(Job, job_id)
        job.status = JobStatus.SUCCEEDED.value
        job.finished_at = utcnow() - timedelta(seconds=ago_s)
        session.commit()


def test_a_jobs_lines_are_stored_and_paged_in_order(client, factory):
    job_id = _job(factory)
    _run_logging(factory, job_id, 25)
    _finish(factory, job_id, ago_s=SETTLE_S + 1)
    page = client.get(f"{API}/jobs/{job_id}/logs?limit=10").get_json()
    assert [line["message"] for line in page["lines"]] == [f"line {i} of the job" for i in range(10)]
    assert page["lines"][0]["level"] == "INFO" and page["lines"][0]["logger"] == "dljobs.runner"
    assert page["lines"][0]["created_at"].endswith("Z")
    seen, after = [], 0
    while True:
        page = client.get(f"{API}/jobs/{job_id}/logs?after={after}&limit=10").get_json()
        seen += page["lines"]
        after = page["next_after"]
        if not page["lines"]:
            break
    assert [line["message"] for line in seen] == [f"line {i} of the job" for i in range(25)] + ["a warning"]
    seqs = [line["seq"] for line in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert page["finished"] is True and page["next_after"] == seqs[-1]


def test_finished_waits_for_the_last_lines_of_a_job_that_just_ended(client, factory):
    job_id = _job(factory)
    assert client.get(f"{API}/jobs/{job_id}/logs").get_json()["finished"] is False  # queued
    _finish(factory, job_id, ago_s=0)
    assert client.get(f"{API}/jobs/{job_id}/logs").get_json()["finished"] is False
    _finish(factory, job_id, ago_s=SETTLE_S + 1)
    assert client.get(f"{API}/jobs/{job_id}/logs").get_json()["finished"] is True


def test_only_lines_of_the_captured_job_are_stored_and_never_a_traceback(client, factory):
    job_id, other = _job(factory), _job(factory)
    logging.getLogger().setLevel(logging.INFO)
    try:
        log.info("before the job: not stored")
        with joblogs.capture(job_id, factory, flush_s=0.05):
            try:
                raise ValueError("/secret/worker/path")
            except ValueError:
                log.exception("it failed")
        log.info("after the job: not stored")
    finally:
        logging.getLogger().setLevel(logging.WARNING)
    lines = client.get(f"{API}/jobs/{job_id}/logs").get_json()["lines"]
    assert [(line["level"], line["message"]) for line in lines] == [("ERROR", "it failed")]
    assert client.get(f"{API}/jobs/{other}/logs").get_json()["lines"] == []


def test_bad_paging_is_a_problem_naming_the_parameter(client, factory, problem):
    job_id = _job(factory)
    problem(client.get(f"{API}/jobs/{job_id}/logs?after=x"), 400, "after")
    problem(client.get(f"{API}/jobs/{job_id}/logs?after=-1"), 400, "after")
    problem(client.get(f"{API}/jobs/{job_id}/logs?limit=0"), 400, "limit")
    problem(client.get(f"{API}/jobs/{job_id}/logs?limit=100000"), 400, "limit")
    problem(client.get(f"{API}/jobs/{job_id}/logs?page=2"), 400, "page")


def test_another_owners_job_and_no_token_answer_like_a_missing_job(factory, owner_client,
                                                                   other_owner_client, anon_client,
                                                                   problem):
    job_id = _job(factory, owner="alice")
    _run_logging(factory, job_id, 1)
    assert len(owner_client.get(f"{API}/jobs/{job_id}/logs").get_json()["lines"]) == 2
    problem(other_owner_client.get(f"{API}/jobs/{job_id}/logs"), 404, "job_id")
    problem(other_owner_client.get(f"{API}/jobs/nope/logs"), 404, "job_id")
    assert anon_client.get(f"{API}/jobs/{job_id}/logs").status_code == 401


def test_lines_go_with_their_job(client, factory):
    job_id = _job(factory)
    _run_logging(factory, job_id, 3)
    _finish(factory, job_id, ago_s=SETTLE_S + 1)
    assert client.delete(f"{API}/jobs/{job_id}").status_code == 204
    with factory() as session:
        assert session.query(JobLog).filter_by(job_id=job_id).count() == 0


def test_json_lines_carry_the_job_id_of_the_job_being_run(factory):
    job_id = _job(factory)
    formatter = JsonLineFormatter()
    record = logging.LogRecord("dljobs.runner", logging.INFO, __file__, 1, "epoch %d", (3,), None)
    outside = json.loads(formatter.format(record))
    assert "job_id" not in outside and outside["message"] == "epoch 3" and outside["level"] == "INFO"
    with joblogs.capture(job_id, factory, flush_s=0.05):
        inside = json.loads(formatter.format(record))
    assert inside["job_id"] == job_id and inside["logger"] == "dljobs.runner"
    assert inside["time"].endswith("+00:00")
