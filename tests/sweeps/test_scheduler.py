"""The scheduler alone (``dljobs.sweeps``) on SQLite and PostgreSQL: no worker, no broker (the
trials it would send are collected in a list), job ends written with ``jobstore`` as a worker does."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from dljobs import jobstore, sweeps
from dljobs.db.models import Job, Sweep
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus, SweepStatus
from dljobs.search.base import Decision
from dljobs.sweeps_request import prepare_sweep
from tests.e2e.conftest import small_spec


def make_sweep(settings, method, max_concurrent=2, space=None) -> str:
    body = {"name": "s", "base": small_spec("s", epochs=4), "method": method, "max_concurrent": max_concurrent,
            "space": space or {"optimizer.lr": {"loguniform": [1e-3, 0.1]}}}
    with session_factory(settings)() as session:
        return sweeps.create_sweep(session, prepare_sweep(session, body, seen_by=None, settings=settings), "ann").id


def trials(settings, sweep_id) -> list[Job]:
    with session_factory(settings)() as session:
        return list(session.scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial_index)))


def end(settings, job_id, status=JobStatus.SUCCEEDED, metrics=None) -> None:
    with session_factory(settings)() as session:
        attempt = jobstore.claim(session, job_id, "host", 1, 60)
        assert jobstore.finish(session, job_id, attempt, status, metrics=metrics)


def sweep_row(settings, sweep_id) -> Sweep:
    with session_factory(settings)() as session:
        return session.get(Sweep, sweep_id)


def test_advance_keeps_max_concurrent_trials_and_ends_the_sweep(settings):
    sent = []
    sweep_id = make_sweep(settings, {"type": "random", "trials": 5, "seed": 0})
    assert sweeps.advance(settings, sweep_id, sent.append)
    assert sweeps.advance(settings, sweep_id, sent.append)  # nothing free: nothing new
    assert [j.trial_index for j in trials(settings, sweep_id)] == [0, 1] and len(sent) == 2
    assert sweep_row(settings, sweep_id).status == SweepStatus.RUNNING
    for step in range(5):
        job = next(j for j in trials(settings, sweep_id) if j.status == JobStatus.QUEUED)
        end(settings, job.id, metrics={"val_accuracy": 0.1 * step, "val_loss": 1.0})
        sweeps.advance(settings, sweep_id, sent.append)
        active = [j for j in trials(settings, sweep_id) if j.status == JobStatus.QUEUED]
        assert len(active) == min(2, 4 - step)
    assert len(sent) == 5 and [j.trial_index for j in trials(settings, sweep_id)] == list(range(5))
    row = sweep_row(settings, sweep_id)
    assert row.status == SweepStatus.SUCCEEDED and row.finished_at is not None
    assert sorted(row.state["ended"]) == sorted(j.id for j in trials(settings, sweep_id))
    assert not sweeps.advance(settings, sweep_id, sent.append)  # finished: left alone


def test_concurrent_advances_never_launch_a_trial_twice(settings):
    sent = []
    sweep_id = make_sweep(settings, {"type": "random", "trials": 20, "seed": 0}, max_concurrent=3)
    barrier = threading.Barrier(4)

    def racer():
        barrier.wait()
        for _ in range(5):
            sweeps.advance(settings, sweep_id, sent.append)

    threads = [threading.Thread(target=racer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = trials(settings, sweep_id)
    assert [j.trial_index for j in jobs] == [0, 1, 2] and sorted(sent) == sorted(j.id for j in jobs)


def test_a_state_lost_after_its_trials_were_created_gets_the_same_trials_back(settings):
    """A process killed between creating the jobs and storing the sweep's state: the next
    advance draws the same trials again and the idempotency keys give back the same jobs."""
    sent = []
    sweep_id = make_sweep(settings, {"type": "random", "trials": 4, "seed": 0})
    with session_factory(settings)() as session:
        initial = dict(session.get(Sweep, sweep_id).state)
    sweeps.advance(settings, sweep_id, sent.append)
    first = [(j.id, j.trial_params) for j in trials(settings, sweep_id)]
    with session_factory(settings)() as session:
        session.get(Sweep, sweep_id).state = initial  # as if that commit never happened
        session.commit()
    sweeps.advance(settings, sweep_id, sent.append)
    assert [(j.id, j.trial_params) for j in trials(settings, sweep_id)] == first
    assert len(sent) == 2


def test_a_sweep_whose_trials_all_fail_fails_saying_so(settings):
    sweep_id = make_sweep(settings, {"type": "grid"}, space={"optimizer.lr": {"choice": [0.1, 0.2]}})
    sweeps.advance(settings, sweep_id, lambda _id: None)
    for job in trials(settings, sweep_id):
        end(settings, job.id, JobStatus.FAILED)
    sweeps.advance(settings, sweep_id, lambda _id: None)
    row = sweep_row(settings, sweep_id)
    assert row.status == SweepStatus.FAILED and "2 ended without one" in row.error


def test_asha_judgements_are_stored_with_the_new_budget(settings):
    sweep_id = make_sweep(settings, {"type": "asha", "trials": 3, "min_epochs": 1, "max_epochs": 4,
                                     "reduction": 2}, max_concurrent=3)
    sweeps.advance(settings, sweep_id, lambda _id: None)
    jobs = trials(settings, sweep_id)
    assert [j.budget_epochs for j in jobs] == [1, 1, 1]
    assert {j.spec["training"]["epochs"] for j in jobs} == {4}  # the spec trains max_epochs
    first = sweeps.judge_epoch(settings, jobs[0].id, 1, {"val_accuracy": 0.5})
    assert (first.decision, first.budget) == (Decision.PROMOTE, 2)
    assert sweeps.judge_epoch(settings, jobs[1].id, 1, {"val_accuracy": 0.2}).decision == Decision.STOP
    again = sweeps.judge_epoch(settings, jobs[0].id, 1, {"val_accuracy": 0.0})  # a resumed run replays it
    assert again.decision == Decision.PROMOTE
    assert [j.budget_epochs for j in trials(settings, sweep_id)] == [2, 1, 1]
    last = sweeps.judge_epoch(settings, jobs[0].id, 2, {"val_accuracy": 0.6})
    assert (last.decision, last.budget) == (Decision.PROMOTE, None)  # past the last rung: to the end


@pytest.mark.parametrize("metric", ["val_accuracy", "val_loss"])
def test_the_leaderboard_ranks_by_the_metric_and_puts_the_unmeasured_last(settings, metric):
    body = {"name": "s", "base": small_spec("s", epochs=1), "method": {"type": "grid"}, "max_concurrent": 4,
            "metric": metric, "space": {"optimizer.lr": {"choice": [0.1, 0.2, 0.3, 0.4]}}}
    with session_factory(settings)() as session:
        sweep_id = sweeps.create_sweep(session, prepare_sweep(session, body, seen_by=None, settings=settings), None).id
    sweeps.advance(settings, sweep_id, lambda _id: None)
    jobs = trials(settings, sweep_id)
    end(settings, jobs[0].id, metrics={"val_accuracy": 0.5, "val_loss": 0.9})
    end(settings, jobs[1].id, metrics={"val_accuracy": 0.9, "val_loss": 0.2})
    end(settings, jobs[2].id, JobStatus.FAILED)
    with session_factory(settings)() as session:
        row = session.get(Sweep, sweep_id)
        board = sweeps.leaderboard(row, trials(settings, sweep_id))
    assert [r["trial"] for r in board] == [1, 0, 2, 3]
    assert sweeps.best_job_id(board) == jobs[1].id
    assert board[2]["reason"] == "failed before its first epoch" and board[3]["reason"].startswith("queued")
