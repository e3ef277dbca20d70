"""What the fault tests share: worker processes, a backend per broker, job helpers.

Workers are real ``dljobs worker`` processes (Celery prefork, one pool process each), in
their own sessions with their logs in the test's folder; jobs are stored and sent with
``dljobs.jobstore`` directly (these tests are about workers, brokers and databases, not
the API).  Every backend is private to its test: a fresh PostgreSQL database, a Redis
database number, a RabbitMQ queue of its own, or a data directory (embedded default).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from dljobs import jobstore, testsupport
from dljobs.broker import producer
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.lifecycle import FINISHED
from dljobs.settings import Settings
from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[2]
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def spec(seed: int = 0, epochs: int = 400) -> dict:
    """A digits MLP: 100 epochs train in about 2 s on one core."""
    return {
        "name": f"fault-{seed}",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed},
    }


def rabbitmq_available() -> bool:
    return testsupport._port_open("127.0.0.1", 5672)


class Workers:
    """``dljobs worker`` processes sharing one environment; stopped together at the end."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, **env) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:
            # `dljobs worker`'s command line, with a node name of its own: two workers
            # named alike would share one remote-control queue (AMQP refuses the second).
            argv = [
                sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
                "--pool", "prefork", "--concurrency", "1", "-Q", self.env["DLJOBS_QUEUE_NAME"],
                "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip
            child = subprocess.Popen(
                argv,
                env={**self.env, **{k: str(v) for k, v in env.items()}},
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.children[name] = child
        return child

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def logs(self, tail: int = 6000) -> str:
        return "\n".join(f"----- {n}\n{self.log(n)[-tail:]}" for n in self.children)

    def wait_ready(self, *names: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(" ready." in self.log(n) for n in names):
                return
            for n in names:
                if self.children[n].poll() is not None:
                    raise AssertionError(f"worker {n} exited\n{self.logs()}")
            time.sleep(0.2)
        raise AssertionError(f"workers {names} not ready after {timeout_s} s\n{self.logs()}")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def worker_env(settings: Settings, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLJOBS_")}
    env.update({
        "DLJOBS_DATA_DIR": str(settings.data_path),
        "DLJOBS_QUEUE_NAME": settings.queue_name,
        "DLJOBS_BLAS_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    if settings.database_url:
        env["DLJOBS_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["DLJOBS_BROKER_URL"] = settings.broker_url
    env.update({f"DLJOBS_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@contextmanager
def fresh_postgres() -> Iterator[str]:
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        upgrade(url)
        yield url


@contextmanager
def backend(kind: str, folder: Path) -> Iterator[Settings]:
    """Settings for a private backend: ``redis``, ``rabbitmq`` (both on PostgreSQL) or
    ``embedded`` (SQLite and the filesystem transport)."""
    data = folder / "data"
    queue = f"dljobs-fault-{uuid.uuid4().hex[:10]}"
    if kind == "embedded":
        settings = Settings(data_dir=data, queue_name=queue)
        settings.ensure_dirs()
        upgrade(settings.effective_database_url)
        yield settings
        return
    with fresh_postgres() as db_url:
        if kind == "redis":
            require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
            with testsupport.fresh_redis_url() as redis_url:
                yield Settings(data_dir=data, database_url=db_url, broker_url=redis_url, queue_name=queue)
            return
        require_service(rabbitmq_available(), "RabbitMQ on 127.0.0.1:5672")
        settings = Settings(data_dir=data, database_url=db_url, broker_url=RABBITMQ_URL, queue_name=queue)
        try:
            yield settings
        finally:
            delete_amqp_queue(settings)


def delete_amqp_queue(settings: Settings) -> None:
    with producer(settings).connection_for_write() as conn:
        conn.default_channel.queue_delete(settings.queue_name)


def submit(settings: Settings, job_spec: dict) -> str:
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, job_spec, None).id
    jobstore.enqueue(job_id, settings)
    return job_id


def job(settings: Settings, job_id: str) -> Job:
    with session_factory(settings)() as session:
        return session.get(Job, job_id)


def wait_for(what: str, probe: Callable[[], object], timeout_s: float, logs: Callable[[], str] = str) -> object:
    """Poll ``probe`` until it returns something truthy; fail saying ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout_s} s\n{logs()}")


def all_finished(settings: Settings, job_ids: list[str]) -> list[Job] | None:
    with session_factory(settings)() as session:
        jobs = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
    return jobs if len(jobs) == len(job_ids) and all(j.status in FINISHED for j in jobs) else None
