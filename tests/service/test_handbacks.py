"""Orderly hand-backs use no attempt, and a resumed attempt's metric points replace, never
duplicate, the ones earlier attempts wrote past its checkpoint (run_job with a stand-in train)."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import select, update

from dlcore.training import IterationInfo
from dljobs import artifacts, jobstore, runner
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job, JobEvent, MetricPoint
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus
from dljobs.runner import HANDED_BACK, run_job
from dljobs.settings import Settings

SPEC = {"name": "fake", "dataset": {"type": "digits"}, "model": {"architecture": "mlp"}, "training": {"epochs": 1}}
TOTAL = 40


class Weights:
    """The final model's stand-in: the runner saves it to a file (dlcore's Model.save)."""

    def save(self, file, compress=True) -> None:
        np.savez(file, w=np.arange(3.0))


class StandInTrain:
    """Iterates to TOTAL, checkpointing every 10 and when asked to stop; ``on_iteration_hook``
    runs at each iteration (a test sets the shutdown flag or raises there)."""

    def __init__(self, hook=None):
        self.hook = hook
        self.stop_reason = None
        self.resumed_at: list[int] = []

    def request_stop(self, reason):
        self.stop_reason = reason

    def _checkpoint(self, callbacks, iteration):
        buf = io.BytesIO()
        np.savez(buf, iteration=np.array(iteration))
        for cb in callbacks:
            if cb.wants_checkpoint(self, iteration):
                cb.on_checkpoint(self, buf.getvalue(), iteration)

    def __call__(self, spec, callbacks=(), resume_from=None, data=None, warm_start=None):
        self.stop_reason = None
        start = int(np.load(resume_from)["iteration"]) if resume_from else 0  # a file: run_job spools it
        self.resumed_at.append(start)
        for cb in callbacks:
            cb.on_start(self)
        iteration = start
        while iteration < TOTAL and self.stop_reason is None:
            iteration += 1
            if self.hook:
                self.hook(iteration)
            info = IterationInfo(iteration, TOTAL, iteration / TOTAL, 1, 1.0 / iteration, 0.01)
            for cb in callbacks:
                cb.on_iteration(self, info)
            if iteration % 10 == 0 or self.stop_reason is not None:
                self._checkpoint(callbacks, iteration)
        result = SimpleNamespace(
            model=Weights(),
            metrics={"train_loss": 1.0, "train_accuracy": 0.6, "val_loss": 1.1, "val_accuracy": 0.5, "epochs": 1},
            stopped=self.stop_reason is not None,
            stop_reason=self.stop_reason,
        )
        for cb in callbacks:
            cb.on_end(self, result)
        return result


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setattr("dljobs.runner.MAX_ITERATION_POINTS_PER_S", 1e12)  # keep every iteration
    s = Settings(data_dir=tmp_path, progress_interval_s=0.01, checkpoint_interval_s=0.01, heartbeat_timeout_s=30)
    upgrade(s.effective_database_url)
    return s


@pytest.fixture
def factory(settings):
    return session_factory(settings)


@pytest.fixture(autouse=True)
def _clear_shutdown():
    runner.SHUTDOWN.clear()
    yield
    runner.SHUTDOWN.clear()


def new_job(factory, max_attempts=3) -> str:
    with factory() as session:
        return jobstore.create_job(session, SPEC, {"layers": []}, max_attempts=max_attempts).id


def load(factory, job_id) -> Job:
    with factory() as session:
        return session.get(Job, job_id)


def iteration_points(factory, job_id) -> list[tuple[str, int, int]]:
    with factory() as session:
        rows = session.execute(
            select(MetricPoint.kind, MetricPoint.iteration, MetricPoint.attempt)
            .where(MetricPoint.job_id == job_id)
            .order_by(MetricPoint.step)
        ).all()
    return [tuple(r) for r in rows]


def test_shutdown_hands_the_job_back_checkpointed_and_uses_no_attempt(settings, factory):
    """Hand-backs beyond max_attempts: the job still runs and succeeds."""
    job_id = new_job(factory, max_attempts=2)
    for round_ in range(4):
        def shut_down_at(iteration, round_=round_):
            if iteration == 5 + 8 * round_:
                runner.SHUTDOWN.set()

        runner.SHUTDOWN.clear()
        train = StandInTrain(shut_down_at)
        assert run_job(job_id, settings, host="h", pid=round_ + 1, train=train) == HANDED_BACK
        job = load(factory, job_id)
        # kept its status, heartbeat cleared (the next claim takes it at once), attempt not used up
        assert job.status == JobStatus.RUNNING and job.heartbeat_at is None
        assert (job.attempt, job.handbacks) == (round_ + 1, round_ + 1)
        assert train.resumed_at == [5 + 8 * (round_ - 1) if round_ else 0]
        with factory() as session:
            assert artifacts.latest_checkpoint(session, job_id).iteration == 5 + 8 * round_
    runner.SHUTDOWN.clear()
    train = StandInTrain()
    assert run_job(job_id, settings, host="h", pid=99, train=train) == JobStatus.SUCCEEDED
    assert train.resumed_at == [29]
    job = load(factory, job_id)
    assert (job.status, job.attempt, job.handbacks) == (JobStatus.SUCCEEDED, 5, 4)
    iterations = [i for kind, i, _ in iteration_points(factory, job_id) if kind == "iteration"]
    assert iterations == list(range(1, TOTAL + 1))


def test_lost_workers_still_use_up_attempts(settings, factory):
    job_id = new_job(factory, max_attempts=2)
    with factory() as session:
        assert jobstore.claim(session, job_id, "h", 1, 30) == 1
        assert jobstore.release(session, job_id, 1)  # an orderly stop: counted as a hand-back
        assert not jobstore.release(session, job_id, 1)  # not twice
        assert jobstore.claim(session, job_id, "h", 2, 30) == 2
        # two workers lost (heartbeat stale): 2 - 1 = 1 < 2 allows one more, then failed
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=None))
        session.commit()
        assert jobstore.claim(session, job_id, "h", 3, 30) == 3
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=None))
        session.commit()
        assert jobstore.claim(session, job_id, "h", 4, 30) is None
    job = load(factory, job_id)
    assert job.status == JobStatus.FAILED and job.error_code == "worker_lost"
    assert job.error_message.startswith("worker lost 2 times")


def test_a_resume_after_a_kill_replaces_the_points_past_its_checkpoint(settings, factory):
    """A kill -9 (the process dies mid-run, nothing handed back): the next attempt resumes from
    the checkpoint at 20 and its points for 21.. replace the dead attempt's, never duplicate."""
    job_id = new_job(factory)

    class Killed(BaseException):
        pass

    def die_at(iteration):
        time.sleep(0.005)  # so the points and checkpoints are written as it goes
        if iteration == 27:
            raise Killed

    with pytest.raises(Killed):
        run_job(job_id, settings, host="h", pid=1, train=StandInTrain(die_at))
    points = iteration_points(factory, job_id)
    assert max(i for _, i, _ in points) >= 21  # the dead attempt wrote past its checkpoint
    with factory() as session:  # its heartbeat goes stale
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=None))
        session.commit()
    train = StandInTrain()
    assert run_job(job_id, settings, host="h", pid=2, train=train) == JobStatus.SUCCEEDED
    assert train.resumed_at == [20]
    points = iteration_points(factory, job_id)
    iterations = [(k, i) for k, i, _ in points]
    assert len(iterations) == len(set(iterations))
    assert [i for k, i in iterations if k == "iteration"] == list(range(1, TOTAL + 1))
    assert {a for _, i, a in points if i > 20} == {2} and {a for _, i, a in points if i <= 20} == {1}
    with factory() as session:
        rewinds = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "rewind")).all()
        metrics = jobstore.metric_points(session, job_id)
    assert [r.data["iteration"] for r in rewinds] == [20]
    keys = [(p.kind, p.iteration) for p in metrics]
    assert keys == sorted(set(keys), key=keys.index) and len(keys) == len(set(keys))
