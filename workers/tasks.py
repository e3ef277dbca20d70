"""The one task: a thin shell around ``dljobs.runner.run_job``."""

from __future__ import annotations

import logging
import math
import time

from celery.exceptions import Reject

from dljobs import sweeps
from dljobs.broker import TRAIN_TASK
from dljobs.lifecycle import FINISHED
from dljobs.runner import DB_UNREACHABLE, HELD, run_job
from workers.celery_app import app, limit_blas_threads, limit_memory, listen_for_handback, settings

log = logging.getLogger(__name__)

#: A message whose job a live-looking worker holds comes back after this many seconds.
HELD_RETRY_COUNTDOWN_S = 3.0

#: Pause before a message is put back for a database this worker cannot reach, so it does
#: not spin through the same message while the consumer is being cancelled.
DB_REJECT_PAUSE_S = 1.0


def held_retries() -> int:
    """Enough retries to outlast a dead holder's heartbeat (twice the timeout): after that
    the holder is alive, and the message is dropped (the reconciler covers the rest)."""
    return math.ceil(2 * settings.heartbeat_timeout_s / HELD_RETRY_COUNTDOWN_S) + 1


@app.task(bind=True, name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_job(self, job_id: str) -> str:
    """Claim and train one job.

    - a duplicate (finished, cancelled, taken) is acked and dropped;
    - a job a worker elsewhere still seems to hold (a fresh heartbeat: killed or alive,
      nobody can tell yet) is tried again in a few seconds, until its heartbeat goes
      stale and the claim succeeds;
    - a database this worker cannot reach puts the message back (requeue) for a worker
      that can, instead of failing and acknowledging it.
    """
    limit_blas_threads()  # here, where NumPy is loaded and the job trains
    listen_for_handback()
    limit_memory()
    try:
        result = run_job(job_id, settings)
    except DB_UNREACHABLE as exc:
        log.warning("job %s: database unreachable; message put back", job_id)
        time.sleep(DB_REJECT_PAUSE_S)
        raise Reject(exc, requeue=True) from None
    if result == HELD and self.request.retries < held_retries():
        raise self.retry(countdown=HELD_RETRY_COUNTDOWN_S, max_retries=held_retries())
    if result in FINISHED:
        try:  # a sweep's trial ended: its slot is free now (the periodic tick would catch up anyway)
            sweeps.after_trial(settings, job_id)
        except Exception:
            log.warning("job %s: advancing its sweep failed; the next tick will", job_id, exc_info=True)
    return result
