"""Orderly stops: a worker or ``dljobs up`` stopped by a signal checkpoints its running job and
hands it back within seconds, using no attempt; nothing it started outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import update

from dlcore.model import read_npz
from dlcore.training import train
from dljobs import artifacts, jobstore, testsupport
from dljobs.client import Client
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.embedded import EmbeddedService
from dljobs.lifecycle import JobStatus
from dljobs.settings import Settings
from tests.conftest import require_service

pytestmark = [pytest.mark.fault, pytest.mark.service]


def spec(epochs: int, seed: int = 3) -> dict:
    return {
        "name": "stops",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 64}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.003},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed},
    }


def connect(service: EmbeddedService) -> Client:
    """The one HTTP door of this module: with the service's token once it writes one."""
    token_file = service.data_dir / "token"
    if token_file.exists():
        return Client(service.base_url, token=token_file.read_text().strip())
    return Client(service.base_url)


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"not {what} after {timeout_s} s")


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ------------------------------------------------------------------ a Celery worker


@pytest.fixture
def backend(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        env = {
            "DLJOBS_DATABASE_URL": db_url,
            "DLJOBS_BROKER_URL": redis_url,
            "DLJOBS_DATA_DIR": str(tmp_path / "data"),
            "DLJOBS_HEARTBEAT_TIMEOUT_S": "30",  # a hand-back must not wait for a stale heartbeat
            "DLJOBS_RECONCILE_AFTER_S": "1",
            "DLJOBS_CHECKPOINT_INTERVAL_S": "1",
        }
        settings = Settings(**{k[len("DLJOBS_"):].lower(): v for k, v in env.items()})
        upgrade(db_url)
        workers: list[subprocess.Popen] = []

        def start_worker(name):
            with open(tmp_path / f"{name}.log", "ab") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "prefork",
                     "--concurrency", "1", "-n", f"{name}@%h", "--loglevel", "INFO",
                     "--without-gossip", "--without-mingle", "--without-heartbeat"],
                    env=dict(os.environ, **env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            workers.append(worker)
            return worker

        yield settings, start_worker
        for worker in workers:
            testsupport.stop_process_group(worker, grace_s=15)


def load(settings, job_id) -> Job:
    with session_factory(settings)() as session:
        return session.get(Job, job_id)


def test_sigterm_to_a_worker_hands_its_job_back_within_10s_and_uses_no_attempt(backend):
    settings, start_worker = backend
    worker = start_worker("w1")
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, spec(epochs=400), None, max_attempts=1).id
    jobstore.enqueue(job_id, settings)
    wait_for(lambda: (load(settings, job_id).progress or {}).get("iteration", 0) > 200, 60, "training")
    worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown
    signalled = time.monotonic()
    wait_for(lambda: worker.poll() is not None, 10, "exited within 10 s of SIGTERM")
    handed_back_after = time.monotonic() - signalled
    job = load(settings, job_id)
    assert job.status == JobStatus.RUNNING and job.heartbeat_at is None, (job.status, job.heartbeat_at)
    assert (job.attempt, job.handbacks) == (1, 1)
    with session_factory(settings)() as session:
        checkpoint = artifacts.latest_checkpoint(session, job_id)
    assert checkpoint is not None and checkpoint.iteration > 200
    # max_attempts is 1: only because the hand-back used none can a second attempt run
    start_worker("w2")
    done = wait_for(lambda: (j := load(settings, job_id)).status in (JobStatus.SUCCEEDED, JobStatus.FAILED) and j,
                    120, "finished")
    assert done.status == JobStatus.SUCCEEDED, (done.error_code, done.error_message)
    assert (done.attempt, done.handbacks) == (2, 1)
    assert handed_back_after < 10
    # the cooperative path: the task returned, the pool child was not torn down mid-job
    log = (Path(settings.data_dir).parent / "w1.log").read_text(errors="replace")
    assert "handed back at shutdown" in log and "exited with 'exitcode" not in log, log[-3000:]


# ------------------------------------------------------------------------ dljobs up


def test_ctrl_c_to_dljobs_up_three_times_the_job_still_succeeds_with_the_same_weights(tmp_path):
    job_spec = spec(epochs=400)
    service = EmbeddedService(tmp_path / "data", env={"DLJOBS_CHECKPOINT_INTERVAL_S": "0.5"})
    service.start().wait_workers()
    job_id = connect(service).submit(job_spec, idempotency_key="stops-1")["id"]
    seen = 0
    for _round in range(3):
        client = connect(service)
        # let it train past the previous stop, so each attempt makes progress
        wait_for(lambda c=client, s=seen: ((c.get(job_id).get("progress") or {}).get("iteration") or 0) > s + 100,
                 60, "training")
        job = client.get(job_id)
        assert job["status"] == JobStatus.RUNNING, job
        assert service.stop(timeout_s=30) == 0, service.log()[-3000:]  # one Ctrl-C
        held = load(Settings(data_dir=tmp_path / "data"), job_id)
        assert (held.status, held.handbacks, held.attempt) == (JobStatus.RUNNING, _round + 1, _round + 1), (
            service.log()[-3000:]  # handed back once per stop, never claimed while stopping
        )
        seen = held.progress["iteration"]  # where the next attempt resumes, about
        service = EmbeddedService(tmp_path / "data", port=service.port, env=service.env)
        service.start().wait_workers()
    done = connect(service).wait(job_id, timeout=120)
    log = service.log()
    assert done["status"] == JobStatus.SUCCEEDED, (done, log[-3000:])
    assert done["attempt"] == 4  # three hand-backs and the run that finished; max_attempts is 3
    resumed = read_npz(connect(service).download_model(job_id))
    reference = read_npz(train(job_spec).model.to_bytes())  # the same spec, never interrupted
    assert resumed.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    service.stop()


def test_sighup_to_dljobs_up_leaves_no_process_behind(tmp_path):
    service = EmbeddedService(tmp_path / "data", workers=2)
    service.start().wait_workers()
    job_id = connect(service).submit(spec(epochs=2000))["id"]
    wait_for(lambda: (connect(service).get(job_id).get("progress") or {}).get("iteration"), 60, "training")
    family = descendants(service.process.pid)
    assert len(family) >= 5, family  # gunicorn master and worker, 2 Celery workers and their pool children
    service.process.send_signal(signal.SIGHUP)  # the terminal closed
    assert service.process.wait(timeout=30) == 0
    wait_for(lambda: not [pid for pid in family if alive(pid)], 5, "every child gone")
    held = load(Settings(data_dir=tmp_path / "data"), job_id)
    assert (held.status, held.handbacks, held.heartbeat_at) == (JobStatus.RUNNING, 1, None)


def test_a_second_ctrl_c_stops_dljobs_up_at_once_and_still_hands_the_job_back(tmp_path):
    service = EmbeddedService(tmp_path / "data")
    service.start().wait_workers()
    job_id = connect(service).submit(spec(epochs=2000))["id"]
    wait_for(lambda: (connect(service).get(job_id).get("progress") or {}).get("iteration"), 60, "training")
    family = descendants(service.process.pid)
    # SIGSTOP the pool child: an orderly stop would then wait out the whole grace period
    pool = [pid for pid in family if pid == load(Settings(data_dir=tmp_path / "data"), job_id).worker_pid]
    assert pool, family
    os.kill(pool[0], signal.SIGSTOP)
    service.process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    service.process.send_signal(signal.SIGINT)  # "now"
    asked = time.monotonic()
    assert service.process.wait(timeout=30) == 0
    assert time.monotonic() - asked < 5  # not the 10 s grace
    wait_for(lambda: not [pid for pid in family if alive(pid)], 5, "every child gone")
    held = load(Settings(data_dir=tmp_path / "data"), job_id)
    assert (held.status, held.handbacks, held.heartbeat_at) == (JobStatus.RUNNING, 1, None)


def test_a_killed_pool_process_job_resumes_with_unique_metric_points(backend):
    settings, start_worker = backend
    start_worker("w1")
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, spec(epochs=300), None).id
    jobstore.enqueue(job_id, settings)
    wait_for(lambda: (load(settings, job_id).progress or {}).get("iteration", 0) > 500, 60, "training")
    with session_factory(settings)() as session:
        wait_for(lambda: artifacts.latest_checkpoint(session, job_id), 30, "checkpointed")
    os.kill(load(settings, job_id).worker_pid, signal.SIGKILL)  # kill -9: nothing handed back
    with session_factory(settings)() as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=None))  # as if it went stale
        session.commit()
    jobstore.enqueue(job_id, settings)
    done = wait_for(lambda: (j := load(settings, job_id)).status in (JobStatus.SUCCEEDED, JobStatus.FAILED) and j,
                    120, "finished")
    assert done.status == JobStatus.SUCCEEDED and done.attempt >= 2, (done.error_code, done.error_message)
    with session_factory(settings)() as session:
        points = jobstore.metric_points(session, job_id, limit=10**6)
    keys = [(p.kind, p.iteration) for p in points]
    assert len(keys) == len(set(keys))
    assert [p.step for p in points] == sorted(p.step for p in points)
    assert {p.attempt for p in points} >= {1, done.attempt}
