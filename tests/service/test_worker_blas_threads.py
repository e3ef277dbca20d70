"""The one-BLAS-thread-per-worker setting binds in the process that trains.

A real Celery worker is started with no ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS`` of the test's making (the product must set them), trains a job the
way every job is trained, and the thread count threadpoolctl saw in that process *after
training* is read back from the job's stored checkpoint (dlcore records it in the
checkpoint's runtime versions).  On a 2-core machine OpenBLAS would otherwise run 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from dlcore.training.checkpoint import unpack_checkpoint
from dljobs import artifacts, jobstore, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.settings import Settings

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

SPEC = {
    "name": "blas-threads",
    "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
    "model": {"layers": [{"type": "affine", "units": 64}, {"type": "relu"}, {"type": "affine", "units": 10}]},
    "optimizer": {"type": "sgd", "lr": 0.05},
    "training": {"epochs": 2, "batch_size": 64, "seed": 0},
}

WORKER_COMMANDS = {
    # what `dljobs up` and `dljobs worker` run, and a worker started by hand with celery
    "dljobs worker": [sys.executable, "-c", "from dljobs.cli import main; main()", "worker"],
    "celery -A workers.celery_app": [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                                     "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
                                     "--without-gossip", "--without-mingle", "--without-heartbeat"],
}


@pytest.mark.parametrize("how", sorted(WORKER_COMMANDS))
def test_a_real_worker_trains_with_one_blas_thread_without_blas_env_from_outside(tmp_path, how):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLJOBS_") and k not in BLAS_ENV}
    env.update({"DLJOBS_DATA_DIR": str(data_dir), "DLJOBS_BLAS_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    settings = Settings(data_dir=data_dir)
    settings.ensure_dirs()
    upgrade(settings.effective_database_url)
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, SPEC, None).id
    jobstore.enqueue(job_id, settings)

    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(WORKER_COMMANDS[how], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and worker.poll() is None:
            with session_factory(settings)() as session:
                status = session.get(Job, job_id).status
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert status == "succeeded", f"job {status}\n{log_path.read_text(errors='replace')[-3000:]}"
        with session_factory(settings)() as session:
            checkpoint = artifacts.latest_checkpoint(session, job_id)
            assert checkpoint is not None, "the finished job keeps its last checkpoint"
            _, meta = unpack_checkpoint(artifacts.read_bytes(session, checkpoint))
    finally:
        testsupport.stop_process_group(worker)

    blas = [b for b in meta["versions"]["blas"] if b.get("internal_api") in ("openblas", "mkl", "blis")]
    assert blas, f"threadpoolctl saw no BLAS in the worker: {meta['versions']}"
    assert [b["num_threads"] for b in blas] == [1] * len(blas), meta["versions"]["blas"]
