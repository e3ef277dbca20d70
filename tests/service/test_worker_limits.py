"""Fault 6: a job over the worker's memory limit fails with the limit and dlcore's estimate in
its reason, before training or when an allocation fails, and is never retried into the wall."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dljobs import jobstore
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus
from dljobs.runner import run_job
from dljobs.settings import Settings


def spec(units: int, batch_size: int = 32) -> dict:
    return {
        "name": "mem",
        "dataset": {"type": "digits"},
        "model": {"layers": [{"type": "affine", "units": units}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "training": {"epochs": 1, "batch_size": batch_size},
    }


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_dir=tmp_path, worker_memory_mb=64, heartbeat_timeout_s=30)
    upgrade(s.effective_database_url)
    return s


def submit(settings, job_spec) -> str:
    with session_factory(settings)() as session:
        return jobstore.create_job(session, job_spec, None).id


def load(settings, job_id) -> Job:
    with session_factory(settings)() as session:
        return session.get(Job, job_id)


def never_called(*_args, **_kwargs):
    raise AssertionError("a job over the memory limit must not train")


def test_a_job_estimated_over_the_limit_fails_before_training_with_both_numbers(settings):
    job_id = submit(settings, spec(units=20000, batch_size=512))  # ~78 MB of activations a batch
    assert run_job(job_id, settings, host="h", pid=1, train=never_called) == JobStatus.FAILED
    job = load(settings, job_id)
    assert job.error_code == "memory_limit"
    assert "64 MB" in job.error_message and "estimates 78.3 MB" in job.error_message, job.error_message
    with session_factory(settings)() as session:  # final: a redelivered message does not retry it
        assert jobstore.claim(session, job_id, "h", 2, 30) is None
    assert load(settings, job_id).attempt == 1


def test_a_memory_error_while_training_fails_the_job_for_good(settings):
    def runs_out(*_args, **_kwargs):
        raise MemoryError

    job_id = submit(settings, spec(units=32))
    assert run_job(job_id, settings, host="h", pid=1, train=runs_out) == JobStatus.FAILED
    job = load(settings, job_id)
    assert job.error_code == "memory_limit" and "64 MB" in job.error_message, job.error_message
    with session_factory(settings)() as session:
        assert jobstore.claim(session, job_id, "h", 2, 30) is None


def test_the_pool_process_limit_turns_a_big_allocation_into_a_memory_error_not_an_oom_kill():
    """RLIMIT_DATA with 4 OpenBLAS threads: a small model still trains under 300 MB, 1 GB raises."""
    probe = textwrap.dedent("""
        import numpy as np
        from workers import celery_app
        from dlcore.training import train
        celery_app.limit_memory()
        train({"dataset": {"type": "digits"}, "model": {"layers": [{"type": "affine", "units": 64},
               {"type": "relu"}, {"type": "affine", "units": 10}]}, "training": {"epochs": 1}})
        try:
            big = np.ones(2**30 // 8)
        except MemoryError:
            print("MemoryError")
    """)
    env = {"DLJOBS_WORKER_MEMORY_MB": "300", "OPENBLAS_NUM_THREADS": "4", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "MemoryError", done.stdout + done.stderr
