"""The /metrics reads (``dljobs.queries``) on SQLite and PostgreSQL: the same figures from both."""

from __future__ import annotations

from datetime import timedelta

from dljobs import jobstore, queries
from dljobs.db.models import Job, utcnow
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus

BOUNDS = (1, 5, 60, 3600)


def _job(session, status: JobStatus, took_s: float | None, progress: dict | None = None) -> str:
    job = jobstore.create_job(session, {"name": "m"}, {}, "m")
    row = session.get(Job, job.id)
    row.status = status.value
    if took_s is not None:
        row.started_at = utcnow() - timedelta(hours=2)
        row.finished_at = row.started_at + timedelta(seconds=took_s)
    row.progress = progress
    session.commit()
    return job.id


def test_durations_are_bucketed_by_status_cumulatively(settings):
    with session_factory(settings)() as session:
        for took in (0.5, 3, 3, 100, 90000):
            _job(session, JobStatus.SUCCEEDED, took)
        _job(session, JobStatus.FAILED, 30)
        _job(session, JobStatus.CANCELLED, None)  # cancelled while queued: no duration
        _job(session, JobStatus.RUNNING, None)
        rows = {r.status: r for r in queries.job_durations(session, BOUNDS)}
        assert set(rows) == {JobStatus.SUCCEEDED, JobStatus.FAILED}
        ok = rows[JobStatus.SUCCEEDED]
        assert ok.at_most == [1, 3, 3, 4] and ok.count == 5
        assert abs(ok.total_s - (0.5 + 3 + 3 + 100 + 90000)) < 1e-3
        failed = rows[JobStatus.FAILED]
        assert failed.at_most == [0, 0, 1, 1] and failed.count == 1 and abs(failed.total_s - 30) < 1e-3
        counts = queries.jobs_by_status(session)
        assert counts[JobStatus.SUCCEEDED] == 5 and counts[JobStatus.QUEUED] == 0 and len(counts) == len(JobStatus)


def test_live_progress_is_that_of_running_jobs(settings):
    with session_factory(settings)() as session:
        running = _job(session, JobStatus.RUNNING, None, {"iteration": 7, "iterations": 10, "eta_s": 1.5})
        _job(session, JobStatus.SUCCEEDED, 1, {"iteration": 10, "iterations": 10, "eta_s": 0})
        assert queries.live_job_progress(session) == [(running, {"iteration": 7, "iterations": 10, "eta_s": 1.5})]
