"""The job lifecycle's table, and every status change the service makes going through it.

The unit tests read the table itself.  The flow test drives the service's status changes
for real (submit, claim, cancel, fail, a lost worker taken over, attempts used up, early
stopping, the runtime limit) and reads back the job_events log, which records every
status a job took: each consecutive pair must be a move of the table.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from dljobs import artifacts, jobstore, lifecycle
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job, JobEvent, utcnow
from dljobs.db.session import session_factory
from dljobs.lifecycle import (
    ACTIVE,
    FINISHED,
    LIVE,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    JobStatus,
    StopReason,
    check_transition,
    has_model,
)
from dljobs.runner import run_job
from dljobs.settings import Settings
from tests.service.test_runner import SPEC, FakeTrainer

# ------------------------------------------------------------------ the table itself


def test_the_sets_are_derived_from_the_enum_and_partition_it():
    assert set(STATUSES) == set(JobStatus) and len(STATUSES) == len(set(STATUSES))
    assert LIVE < ACTIVE and ACTIVE | FINISHED == set(STATUSES) and not ACTIVE & FINISHED
    assert JobStatus.QUEUED in ACTIVE and JobStatus.QUEUED not in LIVE
    assert all(isinstance(s, str) and s == s.value for s in STATUSES)  # the database stores the values


def test_the_table_covers_every_status_and_finished_ones_never_move():
    assert set(TRANSITIONS) == set(JobStatus)
    for status in FINISHED:
        assert TRANSITIONS[status] == frozenset()
    for status in ACTIVE:
        assert TRANSITIONS[status], f"{status} can never end"


def test_every_status_is_reachable_from_queued():
    seen, frontier = {JobStatus.QUEUED}, [JobStatus.QUEUED]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(JobStatus)


def test_check_transition_answers_the_new_status_or_raises_naming_both():
    assert check_transition("queued", "running") is JobStatus.RUNNING
    for old, new in ((JobStatus.SUCCEEDED, JobStatus.RUNNING), (JobStatus.QUEUED, JobStatus.SUCCEEDED),
                     (JobStatus.CANCELLED, JobStatus.QUEUED), (JobStatus.QUEUED, JobStatus.CANCELLING)):
        with pytest.raises(IllegalTransition) as info:
            check_transition(old, new)
        assert info.value.old == old and info.value.new == new and old.value in str(info.value)
    with pytest.raises(ValueError):
        check_transition("queued", "paused")  # not a status at all


def test_the_service_moves_are_moves_of_the_table():
    for moves in (jobstore.CLAIM_MOVES, jobstore.CANCEL_MOVES):
        for old, new in moves.items():
            assert new in TRANSITIONS[old]


def test_which_jobs_keep_a_model():
    assert has_model(JobStatus.SUCCEEDED, None) and has_model("succeeded", StopReason.EARLY_STOPPING)
    assert has_model(JobStatus.STOPPED_EARLY, None)
    assert has_model(JobStatus.FAILED, StopReason.MAX_RUNTIME, 2)  # its last completed epoch
    assert not has_model(JobStatus.FAILED, StopReason.MAX_RUNTIME, 0)  # stopped inside its first epoch
    assert not has_model(JobStatus.FAILED, None) and not has_model(JobStatus.CANCELLED, StopReason.CANCELLED)
    assert not has_model(JobStatus.RUNNING, None)


# ------------------------------------------------------------ the service, for real


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_dir=tmp_path, progress_interval_s=0.02, heartbeat_timeout_s=30)
    upgrade(s.effective_database_url)
    return s


@pytest.fixture
def factory(settings):
    return session_factory(settings)


def _new(factory, **kw) -> str:
    with factory() as session:
        return jobstore.create_job(session, SPEC, {"layers": []}, **kw).id


def _statuses(factory) -> dict[str, list[str]]:
    """Every job's statuses in the order its event log recorded them."""
    out: dict[str, list[str]] = {}
    with factory() as session:
        for event in session.scalars(select(JobEvent).where(JobEvent.type == "status").order_by(JobEvent.id)):
            out.setdefault(event.job_id, []).append(event.data["status"])
    return out


def test_an_illegal_move_is_an_error_and_writes_nothing(factory):
    job_id = _new(factory)
    with factory() as session:
        with pytest.raises(IllegalTransition):
            jobstore.move(session, job_id, JobStatus.QUEUED, JobStatus.SUCCEEDED)
        session.rollback()
        assert session.get(Job, job_id).status == JobStatus.QUEUED
        with pytest.raises(IllegalTransition):  # finish names the job's real status, queued, as old
            jobstore.finish(session, job_id, None, JobStatus.SUCCEEDED)
        assert session.get(Job, job_id, populate_existing=True).status == JobStatus.QUEUED
        # a move from a status the job no longer has is refused, not forced
        assert not jobstore.move(session, job_id, JobStatus.RUNNING, JobStatus.FAILED)


def test_every_status_change_the_service_makes_is_in_the_table(settings, factory, monkeypatch):
    checked: list[tuple[str, str]] = []
    real = lifecycle.check_transition

    def recording(old, new):
        checked.append((str(old), str(new)))
        return real(old, new)

    monkeypatch.setattr(jobstore, "check_transition", recording)

    # runs to success; ends by its own early stopping; hits its runtime limit
    assert run_job(_new(factory), settings, train=FakeTrainer()) == "succeeded"
    early = FakeTrainer(epochs=4, per_epoch=2, stop_at_epoch=2)
    assert run_job(_new(factory), settings, train=early) == "succeeded"
    with factory() as session:
        slow = jobstore.create_job(session, {**SPEC, "training": {"max_runtime_s": 0.05}}, None).id
    assert run_job(slow, settings, train=FakeTrainer(epochs=50, per_epoch=2, step_s=0.01)) == "failed"
    # fails; cancelled while queued; cancelled while running (then claimed: ends cancelled)
    assert run_job(_new(factory), settings, train=FakeTrainer(fail_at=2)) == "failed"
    with factory() as session:
        queued = _new(factory)
        jobstore.request_cancel(session, queued)
        running = _new(factory)
        jobstore.claim(session, running, "h", 1, 30)
        jobstore.request_cancel(session, running)
        jobstore.request_cancel(session, running)  # idempotent: no second move
        session.execute(update(Job).where(Job.id == running).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        session.commit()  # its worker is lost: the next one takes it over, still cancelling
        # a lost worker: its job is taken over, then its attempts run out
        lost = _new(factory, max_attempts=2)
        for attempt in (1, 2):
            assert jobstore.claim(session, lost, f"h{attempt}", attempt, 30) == attempt
            session.execute(update(Job).where(Job.id == lost).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
            session.commit()
        assert jobstore.claim(session, lost, "h3", 3, 30) is None
        # cancelling while its last worker died
        doomed = _new(factory, max_attempts=1)
        jobstore.claim(session, doomed, "h", 1, 30)
        jobstore.request_cancel(session, doomed)
        session.execute(update(Job).where(Job.id == doomed).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        session.commit()
        assert jobstore.claim(session, doomed, "h2", 2, 30) is None
    assert run_job(running, settings, train=FakeTrainer()) == "cancelled"

    histories = _statuses(factory)
    pairs = set()
    for job_id, statuses in histories.items():
        assert statuses[0] == JobStatus.QUEUED, (job_id, statuses)
        assert statuses[-1] in FINISHED, (job_id, statuses)
        for old, new in itertools.pairwise(statuses):
            assert JobStatus(new) in TRANSITIONS[JobStatus(old)], (job_id, statuses)
            pairs.add((old, new))
    assert {("queued", "running"), ("running", "succeeded"), ("running", "failed"), ("queued", "cancelled"),
            ("running", "cancelling"), ("running", "running"), ("cancelling", "cancelled"),
            ("cancelling", "cancelling")} <= pairs
    assert checked and all(JobStatus(new) in TRANSITIONS[JobStatus(old)] for old, new in checked)
    with factory() as session:
        rows = {j.id: j for j in session.scalars(select(Job))}
    assert rows[queued].stop_reason == StopReason.CANCELLED
    assert rows[lost].status == JobStatus.FAILED and rows[lost].error_code == "worker_lost"
    assert rows[doomed].status == JobStatus.CANCELLED


def test_the_api_answers_why_a_job_stopped_and_serves_a_runtime_limited_jobs_model(tmp_path, settings, factory):
    from api import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": settings.effective_database_url, "DATA_DIR": str(tmp_path),
                      "DLJOBS_ENQUEUE": lambda job_id: None, "DLJOBS_BROKER_CHECK": lambda: None})
    client = app.test_client()
    from dljobs.tokens import create_token

    with factory() as session:  # auth is on by default: the test client is an admin
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {create_token(session, 'admin', admin=True)}"
    early, limited, failed = _new(factory), _new(factory), _new(factory)
    assert run_job(early, settings, train=FakeTrainer(epochs=4, per_epoch=2, stop_at_epoch=2)) == "succeeded"
    assert run_job(failed, settings, train=FakeTrainer(fail_at=2)) == "failed"
    with factory() as session:
        jobstore.claim(session, limited, "h", 1, 30)
        assert artifacts.write_artifact(factory, limited, 1, "model", 4, b"PK-last-epoch")
        assert jobstore.finish(session, limited, 1, JobStatus.FAILED, error_code="max_runtime", error_message="slow",
                               stop_reason=StopReason.MAX_RUNTIME, stopped_epoch=2)
    answer = client.get(f"/api/v1/jobs/{early}").get_json()
    assert (answer["status"], answer["stop_reason"], answer["stopped_epoch"]) == ("succeeded", "early_stopping", 2)
    answer = client.get(f"/api/v1/jobs/{limited}").get_json()
    assert (answer["status"], answer["stop_reason"], answer["stopped_epoch"]) == ("failed", "max_runtime", 2)
    download = client.get(f"/api/v1/jobs/{limited}/model")
    assert download.status_code == 200 and download.data == b"PK-last-epoch"
    assert client.get(f"/api/v1/jobs/{failed}/model").status_code == 409  # a plain failure has no model
