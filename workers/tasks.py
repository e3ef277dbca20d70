"""The one task: a thin shell around ``dljobs.runner.run_job``."""

from __future__ import annotations

from dljobs.broker import TRAIN_TASK
from dljobs.runner import run_job
from workers.celery_app import app, limit_blas_threads, limit_memory, listen_for_handback, settings


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_job(job_id: str) -> str:
    """Claim and train one job; a failed claim (duplicate delivery) is acked and dropped."""
    limit_blas_threads()  # here, where NumPy is loaded and the job trains
    listen_for_handback()
    limit_memory()
    return run_job(job_id, settings)
