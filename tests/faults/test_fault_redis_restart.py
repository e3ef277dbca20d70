"""Fault 2: the Redis broker restarted empty (it keeps nothing on disk) while jobs are
queued and one runs.  No job is lost: the reconciler finds the queued jobs without a
message and sends them again; none trains twice: the running job keeps its attempt (its
heartbeat stays fresh, so nobody re-sends it), every job ends with attempt 1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from dljobs import testsupport
from dljobs.settings import Settings
from tests.conftest import require_service
from tests.faults.support import (
    Workers,
    all_finished,
    fresh_postgres,
    job,
    spec,
    submit,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.fault, pytest.mark.service]


class PrivateRedis:
    """A redis-server of this test alone, on a free port, keeping nothing on disk."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for("redis up", lambda: testsupport._port_open("127.0.0.1", self.port), 10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_restarted_empty_loses_no_job_and_trains_none_twice(tmp_path):
    require_service(shutil.which("redis-server") is not None, "redis-server on PATH")
    broker = PrivateRedis(tmp_path)
    broker.start()
    try:
        with fresh_postgres() as db_url:
            settings = Settings(data_dir=tmp_path / "data", database_url=db_url, broker_url=broker.url)
            workers = Workers(tmp_path, worker_env(settings, reconcile_after_s=2, checkpoint_interval_s=1))
            try:
                workers.start("w1")
                workers.start("w2")
                workers.wait_ready("w1", "w2")
                ids = [submit(settings, spec(seed=i, epochs=150)) for i in range(5)]
                wait_for("a job running", lambda: any(job(settings, i).status == "running" for i in ids), 60,
                         workers.logs)
                broker.kill()  # everything it held is gone: the queued messages and the unacked ones
                time.sleep(1.0)
                broker.start()
                jobs = wait_for("every job's end", lambda: all_finished(settings, ids), 150, workers.logs)
            finally:
                workers.stop()
    finally:
        broker.kill()
    assert {j.status for j in jobs} == {"succeeded"}, [(j.status, j.error_message) for j in jobs]
    assert [j.attempt for j in jobs] == [1] * len(ids), "a job was claimed twice"
