"""Run one job on this worker: claim it, train it with dlcore, report as it goes.

``run_job(job_id, settings)`` is what the Celery task calls, and is testable without
Celery.  Bookkeeping is throttled: progress, metrics and diagnostics are written, the
heartbeat refreshed and cancel checked at most every ``DLJOBS_PROGRESS_INTERVAL_S``
(0.5 s) and at the end of every epoch that lasted that long (shorter epochs are written
together), so a fast step never waits on the database and an iteration between two
writes costs well under a microsecond.  A checkpoint is packed only when it will be
stored: at most every ``DLJOBS_CHECKPOINT_INTERVAL_S`` (5 s), when the run stops and at
its end (packing one every epoch took a third of a 20-epoch MLP's time).  Every
write carries the attempt number; once another attempt owns the job the writes are
refused and this run stops quietly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from dlcore.datasets.npz import load_npz
from dlcore.errors import ConfigError, SpecError
from dlcore.model import read_npz
from dlcore.spec import infer, validate
from dlcore.training import TrainingFailed, train
from dljobs import artifacts, jobstore, sweeps
from dljobs.db.models import Dataset, Job
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus, StopReason
from dljobs.search.base import Decision
from dljobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Iteration points kept per second of training at most: a fast model records every
# k-th iteration (k adapts to its speed), so bookkeeping stays a small fraction of a step.
MAX_ITERATION_POINTS_PER_S = 100

# Results of run_job besides the final job statuses (not statuses: nothing stores them).
DROPPED = "dropped"  # the claim failed: duplicate delivery, finished, cancelled or taken
SUPERSEDED = StopReason.SUPERSEDED.value  # another attempt took the job while this one ran
HELD = "held"  # the claim failed because a live worker (as far as anyone can tell) holds the job

#: What a lost or reset database connection raises: the write is retried, not the job failed.
DB_UNREACHABLE = (OperationalError, InterfaceError)
HANDED_BACK = StopReason.HANDED_BACK.value  # this worker is stopping: the job was checkpointed and given back

#: Set when this worker process is asked to stop (``workers.celery_app`` sets it from a
#: signal on a warm shutdown): the running job stops at its next iteration, checkpoints
#: and is handed back, so the process exits within seconds without using up an attempt.
SHUTDOWN = threading.Event()


class JobFailed(Exception):
    """A failure that retrying cannot fix: the job ends failed with this code and message."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


# ---------------------------------------------------------------- the job's inputs


def dataset_file(job: Job, session, settings: Settings) -> Path | None:
    """The job's uploaded data set as a file of the local cache (None when it names none).

    Written then renamed, under its sha256: several worker processes share the cache.
    """
    if job.dataset_id is None:
        return None
    row = session.get(Dataset, job.dataset_id)
    if row is None:
        raise JobFailed("dataset_missing", f"dataset {job.dataset_id} does not exist")
    cache_dir = settings.dataset_cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{row.sha256}.npz"
    if not target.exists():
        blob = row.blob
        if hashlib.sha256(blob).hexdigest() != row.sha256:
            raise JobFailed("bad_data", f"dataset {row.id}: stored bytes do not match their sha256")
        partial = target.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(blob)
        os.replace(partial, target)
    return target


def load_dataset(job: Job, session, settings: Settings):
    """``(x, y)`` of the job's uploaded data set for ``Trainer(data=...)``, or None."""
    path = dataset_file(job, session, settings)
    if path is None:
        return None
    try:
        return load_npz(path, (job.spec.get("dataset") or {}).get("num_classes"))
    except ConfigError as exc:
        raise JobFailed("bad_data", f"{exc.field}: {exc.message}") from None


def load_warm_start(job: Job, session):
    """The model of the job's warm-start job for ``Trainer(warm_start=...)``, or None."""
    if job.warm_start_job_id is None:
        return None
    artifact = artifacts.model_artifact(session, job.warm_start_job_id)
    if artifact is None:
        raise JobFailed("bad_warm_start", f"training.warm_start: job {job.warm_start_job_id} has no trained model")
    try:
        with artifacts.spooled_copy(session, artifact) as file:
            return read_npz(file)
    except (OSError, ValueError, artifacts.ArtifactCorrupt) as exc:
        raise JobFailed("bad_warm_start", f"training.warm_start: job {job.warm_start_job_id}'s model is unreadable: {exc}") from None


# ------------------------------------------------------------------- database writes


def retry_db(write: Callable[[], Any], budget_s: float, what: str) -> Any:
    """``write()``, tried again with backoff (0.5 s doubling to 4 s) while the database
    is unreachable, for up to ``budget_s`` seconds; then its error is raised.

    Each write is one transaction, so a failed one wrote nothing and is safe to repeat.
    """
    deadline = time.monotonic() + budget_s
    pause = 0.5
    while True:
        try:
            return write()
        except DB_UNREACHABLE:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("%s: database unreachable; trying again in %.1f s", what, pause)
            time.sleep(pause)
            pause = min(pause * 2, 4.0)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


# ------------------------------------------------------------------------- reporting


class JobReporter:
    """A trainer callback writing progress, metrics, diagnostics and checkpoints to the job.

    Writes happen at most every ``interval`` seconds, plus at the end of every epoch
    that lasted at least ``interval`` (shorter epochs ride with the next write: a model
    with 10 ms epochs is not slowed by 100 transactions a second).  The trainer asks
    ``wants_checkpoint`` before it packs one; the answer is yes every
    ``checkpoint_interval`` seconds, on a stop and at the end, and such a checkpoint is
    written at once.
    Between two writes an iteration costs almost nothing: ``on_iteration`` keeps a
    reference to the trainer's ``IterationInfo`` (and every ``stride``-th one as a metric
    point) and compares the clock; progress dicts and point rows are built only when
    they are written.  A write is one transaction (progress and metrics only when they
    changed, the buffered points and diagnostics, the heartbeat) and tells whether the job
    was cancelled or superseded; the newest checkpoint not yet stored follows it, in
    chunks outside that transaction (``dljobs.artifacts``), so a long checkpoint write
    never holds the job's row and the heartbeat thread keeps beating.
    """

    def __init__(self, factory, job_id: str, attempt: int, settings: Settings, runtime_limit_s: float):
        self.factory = factory
        self.job_id = job_id
        self.attempt = attempt
        self.interval = settings.progress_interval_s
        self.checkpoint_interval = settings.checkpoint_interval_s
        self.keep_checkpoints = settings.keep_checkpoints
        self.runtime_limit_s = runtime_limit_s
        # A worker cut off from the database keeps its buffer and retries this long; past
        # it the job is handed on (its heartbeat is stale by then anyway).
        self.db_retry_budget_s = 2 * settings.heartbeat_timeout_s
        self.started = time.monotonic()
        self.checkpoint_stored_at = self.started  # time.monotonic() of the last checkpoint written
        # time.monotonic() at which the next write is due: the claim has just written the
        # row, so a job shorter than the interval makes one write, at its end
        self.next_flush = self.started + self.interval
        self.first_iteration: int | None = None
        self.last: Any = None  # the latest IterationInfo
        self.epoch_end: tuple[int, float] | None = None  # (iteration, epoch) of the last epoch end
        self.long_epoch_end: int | None = None  # iteration of the last epoch end written at once
        self.checkpoint: tuple[int, bytes] | None = None  # the newest checkpoint not yet stored
        self.metrics: dict | None = None
        self.points: list = []  # IterationInfo objects and epoch point dicts, in order
        self.diagnostics: list[dict] = []
        self.written_progress: dict | None = None
        self.written_metrics: dict | None = None
        self.stop_reason: StopReason | None = None
        self.lock = threading.Lock()
        self.stride = 1  # record every stride-th iteration as a metric point
        self.settings = settings
        # A sweep's trial with a budget: after that many epochs its sweep's method judges it
        # (dljobs.sweeps.judge_epoch): train on, stop (stopped_early) or promote (checkpoint, requeue).
        self.budget_epochs: int | None = None
        self.window_start = (time.monotonic(), 0)  # (time, iteration) where the rate is measured from

    # trainer hooks -------------------------------------------------------------

    def on_start(self, trainer) -> None:
        self.trainer = trainer

    def on_iteration(self, trainer, info) -> None:
        self.last = info
        iteration = info.iteration
        if self.first_iteration is None:
            self.first_iteration = iteration - 1
            self.window_start = (time.monotonic(), iteration)
        elif iteration % 32 == 0:
            self._adapt_stride(iteration)
        if iteration % self.stride == 0 or iteration == info.iterations:
            self.points.append(info)
        if SHUTDOWN.is_set() and self.stop_reason is None:
            # the trainer then asks wants_checkpoint (yes: it is stopping) and on_end writes it
            self._stop(trainer, StopReason.HANDED_BACK)
        if time.monotonic() >= self.next_flush:
            self.flush(trainer)

    def on_epoch(self, trainer, info) -> None:
        self.metrics = {
            "train_loss": _num(info.train_loss),
            "train_accuracy": _num(info.train_accuracy),
            "val_loss": _num(info.val_loss),
            "val_accuracy": _num(info.val_accuracy),
        }
        values = dict(self.metrics, seconds=_num(info.seconds))
        if info.per_class_accuracy:
            values["per_class_accuracy"] = [_num(a) for a in info.per_class_accuracy]
        if info.confusion:
            values["confusion"] = [[int(c) for c in row] for row in info.confusion]
        self.points.append(
            {"kind": "epoch", "iteration": info.iteration, "epoch": float(info.epoch), "values": values}
        )
        self.epoch_end = (int(info.iteration), float(info.epoch))
        if self.budget_epochs is not None and info.epoch >= self.budget_epochs and self.stop_reason is None:
            self._judge_at_budget(trainer, int(info.epoch))
        if info.seconds is not None and info.seconds >= self.interval:
            self.long_epoch_end = int(info.iteration)
            self.flush(trainer)
        elif time.monotonic() >= self.next_flush:
            self.flush(trainer)

    def _judge_at_budget(self, trainer, epoch: int) -> None:
        verdict = sweeps.judge_epoch(self.settings, self.job_id, epoch, self.metrics)
        self.budget_epochs = verdict.budget
        if verdict.decision == Decision.STOP:
            self._stop(trainer, StopReason.SWEEP_STOPPED)
        elif verdict.decision == Decision.PROMOTE:
            self._stop(trainer, StopReason.SWEEP_PROMOTED)

    def on_event(self, trainer, event) -> None:
        self.diagnostics.append(_jsonable(event.to_dict()))
        if event.severity == "error":
            self.flush(trainer)

    def wants_checkpoint(self, trainer, iteration: int) -> bool:
        """Pack this checkpoint only if it will be stored: when the run stops or ends,
        or once ``checkpoint_interval`` has passed since the last one was written."""
        if getattr(trainer, "stop_reason", None) is not None:
            return True
        if self.last is not None and iteration >= self.last.iterations:
            return True
        return self._checkpoint_due()

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self.checkpoint_stored_at >= self.checkpoint_interval

    # The trainer hands checkpoints over as spooled files: never a second copy in memory.
    checkpoint_as_file = True

    def on_checkpoint(self, trainer, checkpoint, iteration: int) -> None:
        # Only the newest checkpoint is ever resumed from: a newer one replaces one
        # still waiting for its write.  One asked for by wants_checkpoint is written now.
        with self.lock:
            if self.checkpoint is not None:
                _close(self.checkpoint[1])
            self.checkpoint = (int(iteration), checkpoint)
        if iteration == self.long_epoch_end or self._checkpoint_due() or time.monotonic() >= self.next_flush:
            self.flush(trainer)

    def on_end(self, trainer, result) -> None:
        self.flush(trainer)

    # bookkeeping ---------------------------------------------------------------

    @property
    def progress(self) -> dict | None:
        """The progress of the latest iteration (None before the first one)."""
        info = self.last
        if info is None:
            return None
        iteration, iterations = int(info.iteration), int(info.iterations)
        epoch = float(info.epoch)
        if self.epoch_end is not None and self.epoch_end[0] == iteration:
            epoch = self.epoch_end[1]
        done_here = iteration - (self.first_iteration or 0)
        elapsed = time.monotonic() - self.started
        remaining = max(iterations - iteration, 0)
        eta = elapsed / done_here * remaining if done_here > 0 else None
        return {
            "epoch": epoch,
            "epochs": int(info.epochs),
            "iteration": iteration,
            "iterations": iterations,
            "percent": round(100.0 * iteration / iterations, 2) if iterations else 0.0,
            "eta_s": None if eta is None else round(eta, 1),
        }

    def _adapt_stride(self, iteration: int) -> None:
        then, first = self.window_start
        now = time.monotonic()
        if now > then and iteration > first:
            rate = (iteration - first) / (now - then)
            # a power of two, so the recorded iterations stay evenly spaced as it adapts
            self.stride = 1 << max(0, int(rate / MAX_ITERATION_POINTS_PER_S).bit_length() - 1)
        self.window_start = (now, iteration)

    def _stop(self, trainer, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if trainer is not None:
            trainer.request_stop(reason)

    def flush(self, trainer=None) -> str | None:
        """Write what is buffered, heartbeat, and stop the trainer if the job was
        cancelled or superseded."""
        with self.lock:
            points = [_point_row(p) for p in self.points]
            self.points = []
            diagnostics, self.diagnostics = self.diagnostics, []
            checkpoint, self.checkpoint = self.checkpoint, None
            progress = self.progress
            # The row and the event log change only when there is something new to say.
            if progress is not None and self.written_progress is not None and _same_progress(
                progress, self.written_progress
            ):
                progress = None
            metrics = self.metrics if self.metrics != self.written_metrics else None

            def write():
                with self.factory() as session:
                    return jobstore.report(
                        session,
                        self.job_id,
                        self.attempt,
                        progress=progress,
                        metrics=metrics,
                        points=points,
                        diagnostics=diagnostics,
                    )

            status = retry_db(write, self.db_retry_budget_s, f"job {self.job_id}: report")
            # After the points: a crash between the two leaves points past the last checkpoint,
            # which a resumed attempt replaces; the other order would lose points for good.
            if checkpoint is not None:
                try:
                    if status is not None:
                        stored = artifacts.write_artifact(
                            self.factory, self.job_id, self.attempt, artifacts.CHECKPOINT, checkpoint[0],
                            checkpoint[1], keep_checkpoints=self.keep_checkpoints,
                        )
                        status = status if stored is not None else None
                finally:
                    _close(checkpoint[1])
            if status is not None:
                self.written_progress = progress or self.written_progress
                self.written_metrics = self.metrics
                if checkpoint is not None:
                    self.checkpoint_stored_at = time.monotonic()
            self.next_flush = time.monotonic() + self.interval
        if status is None:
            self._stop(trainer, StopReason.SUPERSEDED)
        elif status == JobStatus.CANCELLING:
            self._stop(trainer, StopReason.CANCELLED)
        elif self.runtime_limit_s and time.monotonic() - self.started > self.runtime_limit_s:
            self._stop(trainer, StopReason.MAX_RUNTIME)
        return status


def _close(checkpoint) -> None:
    """Close a checkpoint handed over as a file (bytes need nothing)."""
    if hasattr(checkpoint, "close"):
        checkpoint.close()


def _point_row(point) -> dict:
    """A buffered metric point as the dict ``jobstore.report`` stores."""
    if isinstance(point, dict):
        return point
    return {
        "kind": "iteration",
        "iteration": point.iteration,
        "epoch": point.epoch,
        "values": {"loss": _num(point.loss), "lr": _num(point.lr)},
    }


def _same_progress(a: dict, b: dict) -> bool:
    """Equal but for the ETA (which moves with the clock alone)."""
    return all(a[k] == b[k] for k in a if k != "eta_s")


class Heartbeat(threading.Thread):
    """Keeps the heartbeat fresh while the trainer is busy between callbacks (evaluation)."""

    def __init__(self, factory, job_id: str, attempt: int, every_s: float):
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.factory, self.job_id, self.attempt, self.every_s = factory, job_id, attempt, every_s
        self.done = threading.Event()
        self.status: str | None = JobStatus.RUNNING

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                with self.factory() as session:
                    self.status = jobstore.heartbeat(session, self.job_id, self.attempt)
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
            if self.status is None:
                return

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


# ----------------------------------------------------------------------------- run


def _default_train(spec, callbacks=(), resume_from=None, data=None, warm_start=None):

    return train(spec, callbacks=callbacks, resume_from=resume_from, data=data, warm_start=warm_start)


def run_job(
    job_id: str,
    settings: Settings | None = None,
    *,
    host: str | None = None,
    pid: int | None = None,
    train: Callable[..., Any] | None = None,
) -> str:
    """Claim and run one job; returns its final status, ``dropped`` or ``superseded``.

    ``train`` defaults to ``dlcore.training.train`` (tests pass a stand-in); it gets the
    stored spec validated once here (a ``ValidatedSpec``, which the trainer trusts), the
    uploaded data set's arrays as ``data`` and the warm-start job's model arrays as
    ``warm_start``: the stored spec itself is never rewritten.
    """
    settings = settings or get_settings()
    factory = session_factory(settings)
    host = host or socket.gethostname()
    pid = pid or os.getpid()
    train = train or _default_train

    if SHUTDOWN.is_set():
        # A message this stopping worker still got: taking it would only hand it back again.
        # The job stays as it is; reconcile_queue (or the next start) sends it again.
        log.info("job %s: not claimed, this worker is shutting down", job_id)
        return DROPPED
    if settings.uses_filesystem_broker:  # no message priorities there: the database orders the queue
        with factory() as session:
            job_id = jobstore.take_higher_priority(session, job_id, settings)
    with factory() as session:
        attempt = jobstore.claim(session, job_id, host, pid, settings.heartbeat_timeout_s)
        if attempt is None:
            holder = jobstore.live_holder(session, job_id)
            if holder is not None and holder[0] == host and not process_alive(holder[1]):
                # Killed on this machine (its pool process is gone): no need to wait
                # for its heartbeat to go stale.
                log.info("job %s: its worker %s:%d is gone; taking it over", job_id, *holder)
                attempt = jobstore.claim(
                    session, job_id, host, pid, settings.heartbeat_timeout_s, dead_holder=holder
                )
            if attempt is None and holder is not None:
                log.info("job %s: held by %s:%d with a fresh heartbeat; try again later", job_id, *holder)
                return HELD
        if attempt is None:
            log.info("job %s: claim failed (duplicate, finished or taken); message dropped", job_id)
            return DROPPED
        job = session.get(Job, job_id)
        spec, status, budget_epochs = job.spec, job.status, job.budget_epochs
        # what a lost attempt's writer left half-written is never read: room for this one's
        artifacts.discard_incomplete(session, job_id, attempt)
    log.info("job %s: attempt %d on %s:%d", job_id, attempt, host, pid)

    if status == JobStatus.CANCELLING:
        with factory() as session:
            ok = jobstore.finish(session, job_id, attempt, JobStatus.CANCELLED, stop_reason=StopReason.CANCELLED)
        return JobStatus.CANCELLED.value if ok else SUPERSEDED

    reporter = JobReporter(factory, job_id, attempt, settings, jobstore.runtime_limit_s(spec, settings))
    reporter.budget_epochs = budget_epochs
    # at least three beats per timeout, whatever the two settings say: one missed beat is no loss
    beat = Heartbeat(factory, job_id, attempt, min(settings.heartbeat_interval_s, settings.heartbeat_timeout_s / 3))
    beat.start()
    estimate_mb: float | None = None
    resume_from = None
    try:
        validated = validate(spec)  # this worker's plugins may differ from the API's: once, here
        estimate_mb = infer(validated)["memory_bytes"] / 2**20
        if estimate_mb > settings.worker_memory_mb:
            raise JobFailed("memory_limit", _memory_message(settings, estimate_mb, "needs more than"))
        with factory() as session:
            job = session.get(Job, job_id)
            data = load_dataset(job, session, settings)
            checkpoint = artifacts.latest_checkpoint(session, job_id)
            # a resumed run has its starting weights in the checkpoint
            warm_start = load_warm_start(job, session) if checkpoint is None else None
        if checkpoint is not None:
            # a file (spooled to disk when large), read chunk by chunk: never whole bytes in memory
            resume_from = artifacts.spooled_copy(factory, checkpoint)
            log.info("job %s: resuming from the checkpoint at iteration %d", job_id, checkpoint.iteration)
        result = train(validated, callbacks=[reporter], resume_from=resume_from, data=data, warm_start=warm_start)
        beat.stop()  # a beat after a hand-back would make the job look held again
        return retry_db(
            lambda: _conclude(factory, job_id, attempt, reporter, result),
            reporter.db_retry_budget_s,
            f"job {job_id}: end",
        )
    except DB_UNREACHABLE:
        # The database stayed unreachable past the retries: the job is handed on.  Its
        # heartbeat goes stale, and the message (put back by the task) or the reconciler
        # brings it to a worker that can reach the database, which resumes it.
        log.exception("job %s: database unreachable; handing the job on", job_id)
        raise
    except (KeyboardInterrupt, SystemExit):
        # The worker is shutting down, not the job failing: the job is released, the
        # broker redelivers the message (late ack) or reconcile re-sends it, and the
        # next attempt resumes from the last checkpoint (written now if still buffered).
        _flush_quietly(reporter)
        beat.stop()
        try:
            with factory() as session:
                jobstore.release(session, job_id, attempt)
        except Exception:
            log.warning("job %s: could not release it on shutdown", job_id, exc_info=True)
        raise
    except Exception as exc:
        code, message = classify_failure(exc)
        if isinstance(exc, MemoryError):
            # the pool process's RLIMIT_DATA (workers.celery_app): final, a retry hits the same wall
            code, message = "memory_limit", _memory_message(settings, estimate_mb, "ran out of")
        log.warning("job %s failed: %s: %s", job_id, code, message, exc_info=code == "internal_error")
        _flush_quietly(reporter)  # the history up to the failure stays visible
        with factory() as session:
            ok = jobstore.finish(
                session,
                job_id,
                attempt,
                JobStatus.FAILED,
                error_code=code,
                error_message=message,
                progress=reporter.progress,
            )
        return JobStatus.FAILED.value if ok else SUPERSEDED  # a newer attempt holds it: not ours to end
    finally:
        if resume_from is not None:
            resume_from.close()
        beat.stop()


def _memory_message(settings: Settings, estimate_mb: float | None, what: str) -> str:
    estimate = "unknown" if estimate_mb is None else f"{estimate_mb:.1f} MB"
    return (
        f"training {what} the worker's memory limit of {settings.worker_memory_mb} MB "
        f"(DLJOBS_WORKER_MEMORY_MB); dlcore.spec.infer estimates {estimate} for one batch's activations"
    )


def _flush_quietly(reporter: JobReporter) -> None:
    """Write what the reporter still buffers, on the way out of a failed or interrupted run."""
    try:
        reporter.flush()
    except Exception:  # the job's end must still be recorded
        log.warning("job %s: could not write its last progress", reporter.job_id, exc_info=True)


def _conclude(factory, job_id: str, attempt: int, reporter: JobReporter, result) -> str:
    """End the job after ``train`` returned: stored model, final status and why it stopped.

    - cancelled: ends cancelled (no model);
    - stopped at its runtime limit (the reporter's or the spec's ``max_runtime_s``): ends
      failed with ``stop_reason`` max_runtime, keeping the model of its last completed
      epoch (the trainer hands those weights back) when it completed one;
    - its own ``early_stopping`` rule: succeeds with that ``stop_reason`` and the epoch;
    - otherwise succeeds.
    """
    reason = reporter.stop_reason
    trainer_reason = str(getattr(result, "stop_reason", "") or "")
    stopped = bool(getattr(result, "stopped", False))
    if reason == StopReason.SUPERSEDED:
        return SUPERSEDED
    if reason == StopReason.HANDED_BACK:
        return _hand_back(factory, job_id, attempt)
    if reason == StopReason.SWEEP_PROMOTED:
        # checkpointed at its budget: back to the queue, the next claim resumes from that checkpoint
        handed = _hand_back(factory, job_id, attempt)
        if handed == HANDED_BACK:
            jobstore.enqueue(job_id, settings=reporter.settings)
        return handed
    epochs_done = int((getattr(result, "metrics", None) or {}).get("epochs") or 0)
    with factory() as session:
        metrics = _final_metrics(result, reporter)
        if reason == StopReason.CANCELLED:
            ok = jobstore.finish(
                session, job_id, attempt, JobStatus.CANCELLED, metrics=metrics, stop_reason=StopReason.CANCELLED
            )
            return JobStatus.CANCELLED.value if ok else SUPERSEDED
        if reason == StopReason.SWEEP_STOPPED:
            # its sweep's method stopped it at a rung: it keeps the model of that epoch
            if not _store_model(factory, job_id, attempt, reporter, result.model):
                return SUPERSEDED
            ok = jobstore.finish(
                session, job_id, attempt, JobStatus.STOPPED_EARLY, metrics=metrics,
                progress=reporter.progress, stop_reason=StopReason.SWEEP_STOPPED, stopped_epoch=epochs_done,
            )
            return JobStatus.STOPPED_EARLY.value if ok else SUPERSEDED
        if reason == StopReason.MAX_RUNTIME or (stopped and trainer_reason == StopReason.MAX_RUNTIME):
            # Mid-epoch weights (stopped inside the epoch a resume began in) are no epoch's: not kept.
            keep = epochs_done > 0 and getattr(result, "at_epoch_end", True)
            if keep and not _store_model(factory, job_id, attempt, reporter, result.model):
                return SUPERSEDED
            ok = jobstore.finish(
                session,
                job_id,
                attempt,
                JobStatus.FAILED,
                error_code="max_runtime",
                error_message="training ran longer than its max_runtime_s and was stopped"
                + (f"; the model of its last completed epoch ({epochs_done}) is kept" if keep else ""),
                metrics=metrics,
                stop_reason=StopReason.MAX_RUNTIME,
                stopped_epoch=epochs_done,
            )
            return JobStatus.FAILED.value if ok else SUPERSEDED
        if not _store_model(factory, job_id, attempt, reporter, result.model):
            return SUPERSEDED
        progress = dict(reporter.progress or {}, percent=100.0, eta_s=0.0)
        early = trainer_reason == StopReason.EARLY_STOPPING
        ok = jobstore.finish(
            session,
            job_id,
            attempt,
            JobStatus.SUCCEEDED,
            metrics=metrics,
            progress=progress,
            stop_reason=StopReason.EARLY_STOPPING if early else None,
            stopped_epoch=epochs_done if early else None,
        )
        return JobStatus.SUCCEEDED.value if ok else SUPERSEDED


def _hand_back(factory, job_id: str, attempt: int) -> str:
    """Give the job back after its run stopped for this worker's shutdown (checkpoint written)."""
    with factory() as session:
        ok = jobstore.release(session, job_id, attempt)
    log.info("job %s: handed back at shutdown (attempt %d)", job_id, attempt)
    return HANDED_BACK if ok else SUPERSEDED


def _store_model(factory, job_id: str, attempt: int, reporter: JobReporter, model) -> bool:
    """Store the final model in chunks; False when another attempt holds the job.

    The model is saved to a spooled file, not to bytes: a model of a gigabyte is then
    on disk once, not a second time in memory.  Uncompressed (a valid ``.npz`` all the
    same): deflating 360 MiB of weights took 17 s to save a few percent.
    """
    with tempfile.SpooledTemporaryFile(max_size=artifacts.SPOOL_IN_MEMORY_BYTES) as file:
        model.save(file, compress=False)
        file.seek(0)
        stored = artifacts.write_artifact(
            factory, job_id, attempt, artifacts.MODEL, _last_iteration(reporter), file
        )
    return stored is not None


def _final_metrics(result, reporter: JobReporter) -> dict | None:
    metrics = getattr(result, "metrics", None) or {}
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    if all(k in metrics for k in keys):
        return {k: _num(metrics[k]) for k in keys}
    return reporter.metrics


def _last_iteration(reporter: JobReporter) -> int:
    return int((reporter.progress or {}).get("iteration", 0))


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """An error code and a human-readable reason for a failure retrying cannot fix."""

    if isinstance(exc, JobFailed):
        return exc.code, exc.message
    if isinstance(exc, TrainingFailed):
        return exc.code, exc.message
    if isinstance(exc, SpecError):
        return "invalid_spec", "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    if isinstance(exc, ConfigError):
        return "invalid_spec", str(exc)
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return "max_runtime", "training exceeded its time limit (training.max_runtime_s)"
    if isinstance(exc, MemoryError):
        return "out_of_memory", "the worker ran out of memory training this job"
    # Its text may hold the worker's paths and internals: it stays in the worker's log.
    return "internal_error", (
        f"the worker failed with an unexpected {type(exc).__name__}; its log has the details"
    )


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value):
    """Plain JSON types (NumPy scalars and arrays become floats and lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return _num(value)
    return value
