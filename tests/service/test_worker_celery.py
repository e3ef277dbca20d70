"""Real Celery workers on PostgreSQL + Redis: a killed worker's job is resumed by the
other worker, a duplicated message trains once, time limits end jobs; plus the Celery
configuration the reliability rests on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from dljobs import artifacts, jobstore, testsupport
from dljobs.broker import TRAIN_TASK, celery_config, producer
from dljobs.db.migrate import upgrade
from dljobs.db.models import Artifact, Job
from dljobs.db.session import session_factory
from dljobs.settings import Settings
from tests.conftest import require_service


def spec(seed=0, epochs=3, **training):
    return {
        "name": f"w-{seed}",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed, **training},
    }


def test_celery_is_configured_for_late_ack_and_single_prefetch(tmp_path):
    conf = celery_config(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0", max_runtime_s=100))
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["task_ignore_result"]
    assert conf["broker_transport_options"]["visibility_timeout"] > 100
    embedded = celery_config(Settings(data_dir=tmp_path))
    assert embedded["broker_url"] == "filesystem://"
    assert embedded["broker_transport_options"]["data_folder_in"] == str(tmp_path.resolve() / "broker" / "out")


def test_worker_processes_limit_blas_threads(monkeypatch):
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl controls)
    from threadpoolctl import threadpool_info, threadpool_limits

    from workers import celery_app

    monkeypatch.setattr(celery_app.settings, "blas_threads", 1)
    monkeypatch.setattr(celery_app, "_blas_limited_in", None)  # as in a fresh pool process
    with threadpool_limits(limits=None):
        celery_app.limit_blas_threads()
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)


@pytest.fixture
def backend(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        env = {
            "DLJOBS_DATABASE_URL": db_url,
            "DLJOBS_BROKER_URL": redis_url,
            "DLJOBS_DATA_DIR": str(tmp_path / "data"),
            "DLJOBS_HEARTBEAT_TIMEOUT_S": "3",
            "DLJOBS_RECONCILE_AFTER_S": "1",
        }
        settings = Settings(**{k[len("DLJOBS_"):].lower(): v for k, v in env.items()})
        upgrade(db_url)
        workers = []

        def start_worker(name):
            with open(tmp_path / f"{name}.log", "wb") as log:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "prefork",
                     "--concurrency", "1", "-n", f"{name}@%h", "--loglevel", "INFO"],
                    env=dict(os.environ, **env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

        yield settings, start_worker
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()


def submit(settings, job_spec) -> str:
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, job_spec, None).id
    jobstore.enqueue(job_id, settings)
    return job_id


def wait_job(settings, job_id, predicate, timeout_s=120) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_factory(settings)() as session:
            job = session.get(Job, job_id)
            if predicate(job):
                return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is {job.status} (attempt {job.attempt}) after {timeout_s} s")


@pytest.mark.service
def test_a_killed_worker_job_is_resumed_by_the_other_worker(backend):
    settings, start_worker = backend
    start_worker("w1")
    start_worker("w2")
    # Long enough (seconds) that it is still training when the poll below sees it running.
    job_id = submit(settings, spec(1, epochs=200, checkpoint_every=25))
    running = wait_job(settings, job_id, lambda j: j.status == "running" and (j.progress or {}).get("iteration", 0) > 60)
    first_pid = running.worker_pid
    os.kill(first_pid, signal.SIGKILL)  # the pool process dies mid-job
    done = wait_job(settings, job_id, lambda j: j.status in ("succeeded", "failed"), timeout_s=180)
    assert done.status == "succeeded", done.error
    assert done.attempt == 2 and done.worker_pid != first_pid
    with session_factory(settings)() as session:
        assert artifacts.model_artifact(session, job_id) is not None


@pytest.mark.service
def test_the_same_message_twice_trains_once_and_time_limits_fail_jobs(backend):
    settings, start_worker = backend
    start_worker("w1")
    start_worker("w2")
    job_id = submit(settings, spec(2))
    producer(settings).send_task(TRAIN_TASK, args=[job_id], queue=settings.queue_name)
    done = wait_job(settings, job_id, lambda j: j.status in ("succeeded", "failed"))
    assert done.status == "succeeded" and done.attempt == 1
    slow = submit(settings, spec(3, epochs=5000, max_runtime_s=1.0))
    failed = wait_job(settings, slow, lambda j: j.status in ("succeeded", "failed"), timeout_s=60)
    assert failed.status == "failed" and failed.error_code == "max_runtime"
    # The slow job was sent after the duplicate (first in, first out) and has run: the
    # duplicate was delivered, and its claim refused.
    with session_factory(settings)() as session:
        models = session.scalar(select(func.count()).select_from(Artifact).where(
            Artifact.job_id == job_id, Artifact.kind == "model"))
        assert models == 1
        assert session.get(Job, job_id).attempt == 1


def test_a_claim_the_database_refuses_puts_the_message_back(monkeypatch):
    from celery.exceptions import Reject
    from sqlalchemy.exc import OperationalError

    from workers import tasks

    def unreachable(job_id, settings):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(tasks, "run_job", unreachable)
    monkeypatch.setattr(tasks, "DB_REJECT_PAUSE_S", 0.0)
    with pytest.raises(Reject) as rejected:
        tasks.train_job.run("some-job")
    assert rejected.value.requeue  # back to the broker for a worker that can reach the database


def test_a_job_held_elsewhere_is_retried_shortly(monkeypatch):
    from workers import tasks

    retried = []

    class Retry(Exception):
        pass

    def retry(**options):
        retried.append(options)
        return Retry()

    monkeypatch.setattr(tasks, "run_job", lambda job_id, settings: tasks.HELD)
    monkeypatch.setattr(tasks.train_job, "retry", retry)
    with pytest.raises(Retry):
        tasks.train_job.run("some-job")
    assert retried == [{"countdown": tasks.HELD_RETRY_COUNTDOWN_S, "max_retries": tasks.held_retries()}]
    # retried for twice the heartbeat timeout at least, the time a dead holder's heartbeat takes to go stale
    assert tasks.held_retries() * tasks.HELD_RETRY_COUNTDOWN_S >= 2 * tasks.settings.heartbeat_timeout_s
