"""run_job without Celery: claim, report, cancel, resume, failures, superseded attempts.

A stand-in trainer drives the real callback contract (dlcore.events) so these
tests exercise the runner's bookkeeping in milliseconds; tests/service/test_worker_*.py
train real dlcore models through real Celery workers.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import select, update

from dlcore.training import (
    Callback,
    DiagnosticEvent,
    EpochInfo,
    IterationInfo,
    TrainingFailed,
)
from dljobs import artifacts, jobstore
from dljobs.db.migrate import upgrade
from dljobs.db.models import Artifact, Dataset, Job, JobEvent, utcnow
from dljobs.db.session import session_factory
from dljobs.runner import DROPPED, HELD, SUPERSEDED, run_job
from dljobs.settings import Settings

SPEC = {"name": "fake", "dataset": {"type": "digits"}, "model": {"architecture": "mlp"}, "training": {"epochs": 2}}


class FakeModel:
    def __init__(self, weights):
        self.weights = weights

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, w=self.weights)
        return buf.getvalue()

    def save(self, file, compress=True) -> None:
        file.write(self.to_bytes())


class FakeTrainer:
    """Runs ``epochs * per_epoch`` iterations through the callbacks, honouring request_stop."""

    def __init__(self, epochs=2, per_epoch=5, step_s=0.0, checkpoint_every=3, fail_at=None, stop_at_epoch=None):
        self.epochs, self.per_epoch, self.step_s = epochs, per_epoch, step_s
        self.checkpoint_every, self.fail_at = checkpoint_every, fail_at
        self.stop_at_epoch = stop_at_epoch  # like the spec's early_stopping rule ending the run there
        self.calls = []
        self.stop_reason = None

    def request_stop(self, reason):
        self.stop_reason = reason

    def __call__(self, spec, callbacks=(), resume_from=None, data=None, warm_start=None):
        # a checkpoint arrives as a file (the runner closes it after the run)
        start = int(np.load(resume_from)["iteration"]) if resume_from else 0
        self.calls.append({"spec": spec, "resume_from": resume_from, "resume_iteration": start, "data": data,
                           "warm_start": warm_start})
        self.stop_reason = None
        total = self.epochs * self.per_epoch
        for cb in callbacks:
            cb.on_start(self)
        iteration = start
        epoch_started = time.monotonic()
        ended_early = None
        while iteration < total and self.stop_reason is None and ended_early is None:
            iteration += 1
            time.sleep(self.step_s)
            if self.fail_at == iteration:
                event = DiagnosticEvent("nan_loss", "error", iteration, iteration / self.per_epoch, "loss became NaN")
                for cb in callbacks:
                    cb.on_event(self, event)
                raise TrainingFailed("nan_loss", f"loss became NaN at iteration {iteration}", event)
            info = IterationInfo(iteration, total, iteration / self.per_epoch, self.epochs, 2.3 / iteration, 0.01)
            for cb in callbacks:
                cb.on_iteration(self, info)
            if iteration % self.per_epoch == 0:  # like dlcore: the epoch end, then its checkpoint
                seconds = time.monotonic() - epoch_started
                epoch = EpochInfo(iteration // self.per_epoch, self.epochs, iteration, 1.0, 0.6, 1.1, 0.5, seconds)
                for cb in callbacks:
                    cb.on_epoch(self, epoch)
                epoch_started = time.monotonic()
                if self.stop_at_epoch == iteration // self.per_epoch:
                    ended_early = "early_stopping"
            if iteration % self.checkpoint_every == 0:
                buf = io.BytesIO()
                np.savez(buf, iteration=np.array(iteration))
                for cb in callbacks:
                    cb.on_checkpoint(self, buf.getvalue(), iteration)
        result = SimpleNamespace(
            model=FakeModel(np.arange(3.0)),
            metrics={"train_loss": 1.0, "train_accuracy": 0.6, "val_loss": 1.1, "val_accuracy": 0.5,
                     "epochs": iteration // self.per_epoch},
            stopped=self.stop_reason is not None,
            stop_reason=self.stop_reason or ended_early,
        )
        for cb in callbacks:
            cb.on_end(self, result)
        return result


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_dir=tmp_path, progress_interval_s=0.05, heartbeat_timeout_s=30)
    upgrade(s.effective_database_url)
    return s


@pytest.fixture
def factory(settings):
    return session_factory(settings)


def new_job(factory, spec=SPEC, **kw) -> str:
    with factory() as session:
        return jobstore.create_job(session, spec, {"layers": []}, **kw).id


def load(factory, job_id) -> Job:
    with factory() as session:
        return session.get(Job, job_id)


def test_a_job_runs_to_success_with_history_events_and_model(settings, factory, monkeypatch):
    monkeypatch.setattr("dljobs.runner.MAX_ITERATION_POINTS_PER_S", 1e12)  # keep every iteration
    job_id = new_job(factory)
    trainer = FakeTrainer()
    assert run_job(job_id, settings, host="h1", pid=11, train=trainer) == "succeeded"
    job = load(factory, job_id)
    assert job.status == "succeeded" and job.attempt == 1
    assert (job.worker_host, job.worker_pid) == ("h1", 11)
    assert job.progress["percent"] == 100.0 and job.progress["iteration"] == 10
    assert job.metrics["val_accuracy"] == 0.5
    assert job.started_at <= job.finished_at
    with factory() as session:
        model = artifacts.model_artifact(session, job_id)
        assert np.array_equal(np.load(io.BytesIO(artifacts.read_bytes(session, model)))["w"], np.arange(3.0))
        points = jobstore.metric_points(session, job_id)
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))
    assert [p.step for p in points] == list(range(len(points)))
    assert sum(p.kind == "iteration" for p in points) == 10
    assert [p.values["val_accuracy"] for p in points if p.kind == "epoch"] == [0.5, 0.5]
    statuses = [e.data["status"] for e in events if e.type == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert events[-1].type == "status"


def test_a_fast_model_records_a_bounded_number_of_iteration_points(settings, factory):
    job_id = new_job(factory)
    trainer = FakeTrainer(epochs=2, per_epoch=3000, step_s=0.0, checkpoint_every=10**6)
    started = time.monotonic()
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    seconds = time.monotonic() - started
    with factory() as session:
        points = [p for p in jobstore.metric_points(session, job_id, limit=10**6) if p.kind == "iteration"]
    iterations = [p.iteration for p in points]
    assert iterations == sorted(iterations) and iterations[-1] == 6000
    # about MAX_ITERATION_POINTS_PER_S per second (generous slack: the machine is shared)
    assert len(points) < 6000
    assert len(points) <= 2 * 100 * seconds + 200, (len(points), seconds)
    assert all(p.values["loss"] == pytest.approx(2.3 / p.iteration) for p in points)


def _count_writes(monkeypatch) -> list[float]:
    """Record the time of every ``jobstore.report`` call (one transaction each)."""
    times: list[float] = []
    report = jobstore.report

    def counted(*args, **kwargs):
        times.append(time.monotonic())
        return report(*args, **kwargs)

    monkeypatch.setattr(jobstore, "report", counted)
    return times


def test_short_epochs_are_written_together_at_most_every_interval(settings, factory, monkeypatch):
    writes = _count_writes(monkeypatch)
    job_id = new_job(factory)
    # 60 epochs of 20 instant iterations (far shorter than the interval, even on a loaded
    # machine), a checkpoint at each epoch end
    trainer = FakeTrainer(epochs=60, per_epoch=20, step_s=0.0, checkpoint_every=20)
    # Two things are written at once by design, between two progress writes: a due checkpoint
    # and an epoch that lasted a whole interval.  On a loaded machine (two test processes) the
    # run outlasted the 5 s checkpoint default and a 20-step epoch the fixture's 0.05 s, so here
    # only the run's end stores a checkpoint and the interval is ten times the fixture's.
    settings = settings.model_copy(update={"checkpoint_interval_s": 600.0, "progress_interval_s": 0.5})
    started = time.monotonic()
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    seconds = time.monotonic() - started
    # Writes are at least one interval apart, but for the last one (at the end of training).
    gaps = [b - a for a, b in itertools.pairwise(writes[:-1])]
    assert all(gap >= settings.progress_interval_s for gap in gaps), gaps
    assert len(writes) <= seconds / settings.progress_interval_s + 2, (len(writes), seconds)
    assert len(writes) < 60, len(writes)  # not one (or two) per epoch
    with factory() as session:
        epochs = [p.iteration for p in jobstore.metric_points(session, job_id, limit=10**6) if p.kind == "epoch"]
        checkpoint = artifacts.latest_checkpoint(session, job_id)
    assert epochs == [20 * e for e in range(1, 61)]  # every epoch is still recorded, in order
    assert checkpoint.iteration == 1200  # the newest checkpoint is the one stored


def test_a_long_epoch_and_its_checkpoint_are_written_at_its_end(settings, factory):
    job_id = new_job(factory)
    seen = []

    class Probe(Callback):
        """Runs after the reporter: what is in the database at this moment?"""

        def on_epoch(self, trainer, info):
            with factory() as session:
                epochs = [p for p in jobstore.metric_points(session, job_id) if p.kind == "epoch"]
                seen.append(("epoch", info.epoch, len(epochs), session.get(Job, job_id).metrics))

        def on_checkpoint(self, trainer, checkpoint, iteration):
            with factory() as session:
                seen.append(("checkpoint", iteration, artifacts.latest_checkpoint(session, job_id).iteration))

    # epochs of 4 x 30 ms: longer than the 50 ms interval
    trainer = FakeTrainer(epochs=2, per_epoch=4, step_s=0.03, checkpoint_every=4)
    assert run_job(job_id, settings, train=lambda spec, callbacks, resume_from, **inputs: trainer(
        spec, [*callbacks, Probe()], resume_from, **inputs)) == "succeeded"
    assert seen[0] == ("epoch", 1, 1, {"train_loss": 1.0, "train_accuracy": 0.6, "val_loss": 1.1, "val_accuracy": 0.5})
    assert seen[1:] == [("checkpoint", 4, 4), ("epoch", 2, 2, seen[0][3]), ("checkpoint", 8, 8)]


def test_between_writes_an_iteration_touches_no_database(settings, factory, monkeypatch):
    writes = _count_writes(monkeypatch)
    job_id = new_job(factory)
    trainer = FakeTrainer(epochs=1, per_epoch=20_000, step_s=0.0, checkpoint_every=10**6)
    started = time.monotonic()
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    seconds = time.monotonic() - started
    # the first iteration, one write per interval, the end: never one per iteration
    assert len(writes) <= seconds / settings.progress_interval_s + 3, (len(writes), seconds)


def test_a_duplicate_delivery_trains_once(settings, factory):
    job_id = new_job(factory)
    trainer = FakeTrainer()
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    assert run_job(job_id, settings, train=trainer) == DROPPED
    assert len(trainer.calls) == 1


def test_concurrent_duplicate_deliveries_train_once(settings, factory):
    job_id = new_job(factory)
    trainer = FakeTrainer(step_s=0.01)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_job(job_id, settings, train=trainer))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A duplicate that finds the job running is held for a retry; one that finds it ended is dropped.
    assert results.count("succeeded") == 1 and set(results) - {"succeeded"} <= {DROPPED, HELD}
    assert len(trainer.calls) == 1


def test_a_queued_job_cancelled_never_runs(settings, factory):
    job_id = new_job(factory)
    with factory() as session:
        assert jobstore.request_cancel(session, job_id).status == "cancelled"
    trainer = FakeTrainer()
    assert run_job(job_id, settings, train=trainer) == DROPPED
    assert trainer.calls == []
    assert load(factory, job_id).status == "cancelled"


def test_cancel_of_a_running_job_stops_it_within_the_check_interval(settings, factory):
    job_id = new_job(factory)
    step_s = 0.02
    trainer = FakeTrainer(epochs=1, per_epoch=1000, step_s=step_s, checkpoint_every=10_000)
    cancelled_at = {}

    def cancel_soon():
        time.sleep(0.3)
        with factory() as session:
            assert jobstore.request_cancel(session, job_id).status == "cancelling"
        cancelled_at["t"] = time.monotonic()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    status = run_job(job_id, settings, train=trainer, host="h", pid=1)
    ended = time.monotonic()
    canceller.join()
    assert status == "cancelled"
    job = load(factory, job_id)
    assert job.status == "cancelled" and job.finished_at is not None
    assert job.progress["iteration"] < 1000
    # at most one check interval plus one iteration (plus database writes) after the request
    assert ended - cancelled_at["t"] < settings.progress_interval_s + step_s + 0.5


def test_a_training_failure_fails_once_with_its_reason(settings, factory):
    job_id = new_job(factory)
    trainer = FakeTrainer(fail_at=4)
    assert run_job(job_id, settings, train=trainer) == "failed"
    job = load(factory, job_id)
    assert job.status == "failed" and job.attempt == 1
    assert job.error == {"code": "nan_loss", "message": "loss became NaN at iteration 4"}
    with factory() as session:
        codes = [d.code for d in session.get(Job, job_id).diagnostics]
    assert codes == ["nan_loss"]
    assert run_job(job_id, settings, train=trainer) == DROPPED
    assert len(trainer.calls) == 1


def test_an_unknown_component_fails_the_job_without_retry(settings, factory):
    from dlcore.errors import ConfigError

    job_id = new_job(factory)

    def broken(spec, callbacks=(), resume_from=None, **inputs):
        raise ConfigError("model.layers[0].type", "unknown layer 'warp'")

    assert run_job(job_id, settings, train=broken) == "failed"
    job = load(factory, job_id)
    assert job.error["code"] == "invalid_spec" and "warp" in job.error["message"]


def test_an_unexpected_error_fails_the_job_naming_its_type_only(settings, factory, caplog):
    job_id = new_job(factory)

    def crashes(spec, callbacks=(), resume_from=None, **inputs):
        raise KeyError("/srv/secret/path")

    assert run_job(job_id, settings, train=crashes) == "failed"
    job = load(factory, job_id)
    assert job.error["code"] == "internal_error" and "KeyError" in job.error["message"]
    assert "secret" not in job.error["message"]
    assert any(r.exc_info and "secret" in str(r.exc_info[1]) for r in caplog.records)  # in the log


def test_a_lost_worker_is_resumed_from_its_last_checkpoint(settings, factory):
    job_id = new_job(factory)
    # The first worker dies after iteration 7 (SystemExit, as on a worker shutdown).
    class Dies(FakeTrainer):
        def __call__(self, spec, callbacks=(), resume_from=None, **inputs):
            self.epochs = 1
            self.per_epoch = 7
            super().__call__(spec, callbacks, resume_from, **inputs)
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        run_job(job_id, settings, train=Dies(checkpoint_every=3), host="a", pid=1)
    released = load(factory, job_id)
    assert released.status == "running" and released.heartbeat_at is None  # claimable at once
    with factory() as session:
        assert artifacts.latest_checkpoint(session, job_id).iteration == 6
    second = FakeTrainer(checkpoint_every=3)
    assert run_job(job_id, settings, train=second, host="b", pid=2) == "succeeded"
    assert second.calls[0]["resume_iteration"] == 6
    job = load(factory, job_id)
    assert job.attempt == 2 and job.worker_host == "b"
    with factory() as session:
        kinds = session.execute(select(Artifact.kind).where(Artifact.job_id == job_id)).scalars().all()
    # older checkpoints were deleted: the last DLJOBS_KEEP_CHECKPOINTS stay
    assert sorted(kinds) == ["checkpoint"] * settings.keep_checkpoints + ["model"]


def test_a_superseded_attempt_stops_and_its_writes_are_refused(settings, factory):
    job_id = new_job(factory)
    # long enough that only the take-over ends it (it stops at the next progress write after)
    trainer = FakeTrainer(epochs=1, per_epoch=6000, step_s=0.005, checkpoint_every=10_000)
    took_over: list[int | None] = []

    def take_over():
        # once the old worker has claimed the job and trained a little: not on a timer, which a
        # slow start outran (the take-over came before the claim, and the old run succeeded)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = load(factory, job_id)
            if job.worker_host == "old" and job.progress:
                break
            time.sleep(0.01)
        with factory() as session:
            session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
            session.commit()
            took_over.append(jobstore.claim(session, job_id, "new", 2, 30))

    thief = threading.Thread(target=take_over)
    thief.start()
    assert run_job(job_id, settings, train=trainer, host="old", pid=1) == SUPERSEDED
    thief.join()
    assert took_over == [2]
    job = load(factory, job_id)
    assert job.status == "running" and job.attempt == 2 and job.worker_host == "new"
    with factory() as session:
        assert artifacts.model_artifact(session, job_id) is None
        assert jobstore.finish(session, job_id, 1, "succeeded") is False


def test_worker_lost_too_often_fails_the_job(settings, factory):
    job_id = new_job(factory)
    with factory() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", attempt=3, worker_host="w3", worker_pid=33, heartbeat_at=utcnow() - timedelta(hours=1))
        )
        session.commit()
    trainer = FakeTrainer()
    assert run_job(job_id, settings, train=trainer) == DROPPED
    job = load(factory, job_id)
    assert job.status == "failed"
    assert job.error == {"code": "worker_lost", "message": "worker lost 3 times (last w3:33)"}
    assert trainer.calls == []


def test_an_uploaded_dataset_is_cached_locally_and_given_to_the_trainer_as_arrays(settings, factory):
    buf = io.BytesIO()
    x = np.arange(8.0).reshape(4, 2)
    np.savez(buf, x=x, y=np.array([0, 1, 0, 1]))
    blob = buf.getvalue()
    import hashlib

    with factory() as session:
        row = Dataset(name="d", sample_shape=[2], num_classes=2, n_samples=4, size_bytes=len(blob),
                      sha256=hashlib.sha256(blob).hexdigest(), blob=blob)
        session.add(row)
        session.commit()
        dataset_id = row.id
    spec = {"dataset": {"type": "npz", "sample_shape": [2], "num_classes": 2},
            "model": {"layers": [{"type": "affine", "units": 2}]}}
    job_id = new_job(factory, spec=spec, dataset_id=dataset_id)
    trainer = FakeTrainer()
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    call = trainer.calls[0]
    seen_x, seen_y = call["data"]
    assert np.array_equal(seen_x, x) and seen_y.tolist() == [0, 1, 0, 1]
    assert call["spec"]["dataset"]["path"] is None  # the spec is never rewritten with a local path
    assert (settings.dataset_cache_dir / f"{hashlib.sha256(blob).hexdigest()}.npz").read_bytes() == blob
    assert load(factory, job_id).spec == jobstore_spec(spec)  # the stored spec is unchanged


def jobstore_spec(spec):
    """What create_job stores for a plain spec: the spec itself."""
    return spec


def test_a_warm_start_job_gives_the_trainer_its_model_and_a_resumed_run_does_not(settings, factory):
    source_id = new_job(factory)
    assert run_job(source_id, settings, train=FakeTrainer()) == "succeeded"
    job_id = new_job(factory, warm_start_job_id=source_id)
    trainer = FakeTrainer()
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    assert np.array_equal(trainer.calls[0]["warm_start"]["w"], np.arange(3.0))  # the source's stored model
    missing = new_job(factory, warm_start_job_id="nosuchjob")
    assert run_job(missing, settings, train=FakeTrainer()) == "failed"
    assert load(factory, missing).error_code == "bad_warm_start"


def test_a_job_ended_by_its_own_early_stopping_succeeds_saying_so_and_when(settings, factory):
    job_id = new_job(factory)
    assert run_job(job_id, settings, train=FakeTrainer(epochs=5, per_epoch=2, stop_at_epoch=3)) == "succeeded"
    job = load(factory, job_id)
    assert job.status == "succeeded" and job.stop_reason == "early_stopping" and job.stopped_epoch == 3
    with factory() as session:
        assert artifacts.model_artifact(session, job_id) is not None
    plain = new_job(factory)
    assert run_job(plain, settings, train=FakeTrainer()) == "succeeded"
    assert load(factory, plain).stop_reason is None and load(factory, plain).stopped_epoch is None


def test_a_job_at_its_runtime_limit_fails_and_keeps_its_last_completed_epochs_model(settings, factory):
    from dljobs.lifecycle import has_model

    with factory() as session:
        job_id = jobstore.create_job(session, {**SPEC, "training": {"max_runtime_s": 0.1}}, None).id
    trainer = FakeTrainer(epochs=100, per_epoch=2, step_s=0.01)
    assert run_job(job_id, settings, train=trainer) == "failed"
    job = load(factory, job_id)
    assert job.error_code == "max_runtime" and job.stop_reason == "max_runtime" and job.stopped_epoch >= 1
    assert has_model(job.status, job.stop_reason, job.stopped_epoch)
    with factory() as session:
        blob = artifacts.read_bytes(session, artifacts.model_artifact(session, job_id))
    assert np.array_equal(np.load(io.BytesIO(blob))["w"], np.arange(3.0))
    # stopped before any epoch completed: nothing to keep
    with factory() as session:
        early_id = jobstore.create_job(session, {**SPEC, "training": {"max_runtime_s": 0.01}}, None).id
    assert run_job(early_id, settings, train=FakeTrainer(epochs=1, per_epoch=1000, step_s=0.005)) == "failed"
    with factory() as session:
        assert artifacts.model_artifact(session, early_id) is None
    assert load(factory, early_id).stopped_epoch == 0


def test_a_job_held_by_a_dead_process_of_this_host_is_taken_over_at_once(settings, factory):
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    job_id = new_job(factory)
    with factory() as session:
        assert jobstore.claim(session, job_id, socket.gethostname(), gone.pid, 60) == 1
    trainer = FakeTrainer()
    # The heartbeat is fresh, yet the holder is gone: no wait for the timeout.
    assert run_job(job_id, settings, train=trainer) == "succeeded"
    assert load(factory, job_id).attempt == 2 and len(trainer.calls) == 1


def test_a_job_held_by_a_live_process_is_held_not_dropped(settings, factory):
    import os

    job_id = new_job(factory)
    with factory() as session:
        assert jobstore.claim(session, job_id, "elsewhere", os.getpid(), 60) == 1
    trainer = FakeTrainer()
    assert run_job(job_id, settings, train=trainer) == HELD  # the task retries it shortly
    assert trainer.calls == [] and load(factory, job_id).attempt == 1
