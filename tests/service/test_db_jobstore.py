"""The jobstore on SQLite and PostgreSQL: claims, cancel, guarded writes, events, reconcile."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from dljobs import artifacts, jobstore
from dljobs.db.models import Artifact, ArtifactChunk, Job, JobEvent, MetricPoint, utcnow
from dljobs.db.session import session_factory
from dljobs.settings import Settings

SPEC = {"dataset": {"type": "digits"}, "training": {"epochs": 1}}


@pytest.fixture
def session(settings):
    with session_factory(settings)() as s:
        yield s


def statuses(session, job_id):
    rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "status").order_by(JobEvent.id))
    return [e.data["status"] for e in rows]


def make_stale(session, job_id):
    session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    session.commit()


def test_create_job_is_queued_with_utc_times_and_honours_idempotency_keys(session):
    job = jobstore.create_job(session, SPEC, {"total_params": 1}, "a", "key-1", request_hash="h1", max_attempts=2)
    assert job.created_now and job.status == "queued" and job.attempt == 0 and job.max_attempts == 2
    assert len(job.id) == 32 and job.created_at.tzinfo == UTC
    again = jobstore.create_job(session, SPEC, {"total_params": 1}, "a", "key-1", request_hash="h1")
    assert again.id == job.id and again.created_now is False
    other = jobstore.create_job(session, SPEC, None, "b")
    assert other.id != job.id
    session.expire_all()
    assert session.get(Job, job.id).created_at.tzinfo == UTC
    assert statuses(session, job.id) == ["queued"]


def test_claim_is_one_conditional_update_and_duplicates_lose(session, settings):
    job = jobstore.create_job(session, SPEC, None)
    winners = []
    factory = session_factory(settings)

    def try_claim(i):
        with factory() as s:
            winners.append(jobstore.claim(s, job.id, "h", i, 60))

    threads = [threading.Thread(target=try_claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(winners, key=lambda w: (w is not None, w)) == [None, None, None, 1]
    session.expire_all()
    assert session.get(Job, job.id).status == "running"


def test_a_stale_heartbeat_lets_the_next_attempt_claim_until_attempts_run_out(session):
    job = jobstore.create_job(session, SPEC, None, max_attempts=2)
    assert jobstore.claim(session, job.id, "h1", 1, 60) == 1
    assert jobstore.claim(session, job.id, "h2", 2, 60) is None  # heartbeat fresh
    make_stale(session, job.id)
    assert jobstore.claim(session, job.id, "h2", 2, 60) == 2
    assert jobstore.report(session, job.id, 1, progress={"percent": 1}) is None  # superseded
    assert jobstore.report(session, job.id, 2, progress={"percent": 1}) == "running"
    make_stale(session, job.id)
    assert jobstore.claim(session, job.id, "h3", 3, 60) is None
    session.expire_all()
    failed = session.get(Job, job.id)
    assert failed.status == "failed" and failed.error == {"code": "worker_lost", "message": "worker lost 2 times (last h2:2)"}
    assert statuses(session, job.id) == ["queued", "running", "running", "failed"]


def test_a_job_cancelled_while_its_last_worker_died_ends_cancelled(session):
    job = jobstore.create_job(session, SPEC, None, max_attempts=2)
    for attempt in (1, 2):
        assert jobstore.claim(session, job.id, "h", attempt, 60) == attempt
        make_stale(session, job.id)
    assert jobstore.request_cancel(session, job.id).status == "cancelling"
    assert jobstore.claim(session, job.id, "h", 3, 60) is None
    session.expire_all()
    assert session.get(Job, job.id).status == "cancelled" and session.get(Job, job.id).error is None


def test_cancel_queued_running_and_finished_jobs(session):
    queued = jobstore.create_job(session, SPEC, None)
    assert jobstore.request_cancel(session, queued.id).status == "cancelled"
    assert jobstore.request_cancel(session, queued.id).status == "cancelled"  # idempotent
    assert jobstore.claim(session, queued.id, "h", 1, 60) is None
    running = jobstore.create_job(session, SPEC, None)
    attempt = jobstore.claim(session, running.id, "h", 1, 60)
    assert jobstore.request_cancel(session, running.id).status == "cancelling"
    assert jobstore.heartbeat(session, running.id, attempt) == "cancelling"
    assert jobstore.finish(session, running.id, attempt, "cancelled")
    assert jobstore.request_cancel(session, running.id).status == "cancelled"
    assert jobstore.request_cancel(session, "0" * 32) is None
    assert statuses(session, running.id) == ["queued", "running", "cancelling", "cancelled"]


def test_reports_number_metric_steps_and_log_every_change(session):
    job = jobstore.create_job(session, SPEC, None)
    attempt = jobstore.claim(session, job.id, "h", 1, 60)
    point = {"kind": "iteration", "iteration": 1, "epoch": 0.1, "values": {"loss": 2.0}}
    jobstore.report(session, job.id, attempt, progress={"percent": 10.0}, points=[point, dict(point, iteration=2)])
    jobstore.report(session, job.id, attempt, metrics={"val_accuracy": 0.5},
                    points=[{"kind": "epoch", "iteration": 2, "epoch": 1.0, "values": {"val_accuracy": 0.5}}],
                    diagnostics=[{"code": "slow_progress", "severity": "warning", "iteration": 2, "epoch": 1.0,
                                  "message": "slow", "data": {"window": 4}}])
    assert [p.step for p in jobstore.metric_points(session, job.id)] == [0, 1, 2]
    assert [p.step for p in jobstore.metric_points(session, job.id, since=1)] == [2]
    types = [e.type for e in jobstore.events_since(session, job.id)]
    assert types == ["status", "status", "metrics", "metrics", "progress", "metrics", "diagnostic"]
    ids = [e.id for e in jobstore.events_since(session, job.id)]
    assert ids == sorted(ids)
    assert [e.id for e in jobstore.events_since(session, job.id, after_id=ids[3])] == ids[4:]
    session.expire_all()
    stored = session.get(Job, job.id)
    assert stored.metrics == {"val_accuracy": 0.5} and stored.progress == {"percent": 10.0}
    assert [d.code for d in stored.diagnostics] == ["slow_progress"]


def test_artifacts_keep_the_last_checkpoints_and_deleting_a_job_removes_its_history(session):
    factory = sessionmaker(bind=session.get_bind(), expire_on_commit=False)
    job = jobstore.create_job(session, SPEC, None)
    attempt = jobstore.claim(session, job.id, "h", 1, 60)
    for iteration in (5, 10, 15):
        assert artifacts.write_artifact(factory, job.id, attempt, "checkpoint", iteration, b"c%d" % iteration,
                                        keep_checkpoints=2)
    assert [c.iteration for c in artifacts.checkpoints(session, job.id)] == [15, 10]
    assert artifacts.read_bytes(session, artifacts.latest_checkpoint(session, job.id)) == b"c15"
    assert artifacts.write_artifact(factory, job.id, attempt + 1, "model", 10, b"m") is None
    assert jobstore.delete_job(session, job.id) is False  # still running
    jobstore.report(session, job.id, attempt, points=[{"kind": "epoch", "iteration": 1, "epoch": 1.0, "values": {}}])
    assert artifacts.write_artifact(factory, job.id, attempt, "model", 10, b"model")
    assert jobstore.finish(session, job.id, attempt, "succeeded")
    assert artifacts.read_bytes(session, artifacts.model_artifact(session, job.id)) == b"model"
    assert jobstore.delete_job(session, job.id) is True
    for model in (Artifact, MetricPoint, JobEvent):
        assert session.scalars(select(model).where(model.job_id == job.id)).first() is None
    assert session.scalars(select(ArtifactChunk)).first() is None


def test_queue_position_counts_older_queued_jobs(session):
    jobs = [jobstore.create_job(session, SPEC, None) for _ in range(3)]
    assert [jobstore.queue_position(session, j) for j in jobs] == [1, 2, 3]
    jobstore.claim(session, jobs[0].id, "h", 1, 60)
    session.expire_all()
    assert [jobstore.queue_position(session, session.get(Job, j.id)) for j in jobs] == [None, 1, 2]


def test_reconcile_sends_lost_jobs_again(session, settings, tmp_path):
    lost = jobstore.create_job(session, SPEC, None)  # never sent
    recent = jobstore.create_job(session, SPEC, None)
    session.execute(update(Job).where(Job.id == recent.id).values(enqueued_at=utcnow()))
    released = jobstore.create_job(session, SPEC, None)
    session.commit()
    attempt = jobstore.claim(session, released.id, "h", 1, 60)
    session.execute(update(Job).where(Job.id == released.id).values(enqueued_at=utcnow()))
    session.commit()
    assert jobstore.release(session, released.id, attempt)
    sent = jobstore.reconcile_queue(settings, older_than_s=30)
    assert sorted(sent) == sorted([lost.id, released.id])
    messages = list((settings.broker_dir / "out").iterdir())
    assert len(messages) == 2  # the filesystem transport holds one file per message
    session.expire_all()
    assert session.get(Job, lost.id).enqueued_at is not None
    # Both messages still wait in the broker: nothing is sent twice.
    assert jobstore.reconcile_queue(settings, older_than_s=30) == []
    for message in messages:  # the broker loses them
        message.unlink()
    assert jobstore.reconcile_queue(settings, older_than_s=30) == [released.id]  # lost: not yet overdue


def test_settings_come_from_prefixed_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DLJOBS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DLJOBS_BLAS_THREADS", "2")
    monkeypatch.delenv("DLJOBS_DATABASE_URL", raising=False)
    monkeypatch.delenv("DLJOBS_BROKER_URL", raising=False)
    s = Settings()
    assert s.blas_threads == 2 and s.max_runtime_s == 86400
    assert s.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'dljobs.sqlite'}"
    assert s.effective_broker_url == "filesystem://"
    assert s.visibility_timeout_s > s.max_runtime_s


def test_every_setting_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    for name in Settings.model_fields:
        assert f"`DLJOBS_{name.upper()}`" in doc, f"DLJOBS_{name.upper()} missing from docs/service.md"


def test_one_reconcile_pass_at_a_time_across_processes(settings):
    from dljobs.db.locks import try_exclusive

    with try_exclusive(settings, "reconcile") as first, try_exclusive(settings, "reconcile") as second:
        assert first and not second
        assert jobstore.reconcile_queue(settings, older_than_s=0) == []  # skipped: not ours
    with try_exclusive(settings, "reconcile") as again:
        assert again  # released at the end of the block


def test_a_job_created_for_sending_records_the_send_with_its_row(session, settings, monkeypatch):
    # The API's submit: enqueued_at is written in the INSERT's transaction, so the send
    # after it needs no second one; the message is in the broker all the same.
    job = jobstore.create_job(session, SPEC, None, sending=True)
    assert job.enqueued_at == job.created_at
    jobstore.enqueue(job.id, settings, session=session)
    session.expire_all()
    assert session.get(Job, job.id).enqueued_at is not None
    assert len(list((settings.broker_dir / "out").iterdir())) == 1
    assert jobstore.reconcile_queue(settings, older_than_s=0) == []  # held by the broker: not resent

    # A send that fails takes the mark back: the reconciler's next pass sends it.
    def broken(_settings):
        raise ConnectionError("broker away")

    monkeypatch.setattr(jobstore, "producer", broken)
    unsent = jobstore.create_job(session, SPEC, None, sending=True)
    jobstore.enqueue(unsent.id, settings, session=session)
    session.expire_all()
    assert session.get(Job, unsent.id).enqueued_at is None
    monkeypatch.undo()
    assert jobstore.reconcile_queue(settings, older_than_s=30) == [unsent.id]


def test_a_key_the_caller_checked_already_still_finds_the_existing_job(session):
    # key_checked skips the lookup; a key taken in between fails the unique INSERT instead.
    first = jobstore.create_job(session, SPEC, None, "a", "key-checked", request_hash="h1")
    again = jobstore.create_job(session, SPEC, None, "a", "key-checked", request_hash="h2", key_checked=True)
    assert again.id == first.id and again.created_now is False and again.request_hash == "h1"
    assert session.scalars(select(Job).where(Job.idempotency_key == "key-checked")).all() == [again]


def test_the_place_counted_at_creation_is_answered_once_then_counted_again(session):
    first = jobstore.create_job(session, SPEC, None, sending=True)
    second = jobstore.create_job(session, SPEC, None, sending=True)
    assert jobstore.queue_position(session, second) == 2  # counted in its creating transaction
    jobstore.claim(session, first.id, "h", 1, 60)
    session.expire_all()
    assert jobstore.queue_position(session, first) is None
    assert jobstore.queue_position(session, second) == 1  # not the stale count: a query again
