"""A hundred event streams on one API process, each complete and in order, while other requests answer.

The API runs as ``dljobs api`` runs it (the front door, gunicorn gthread, one process)
on PostgreSQL.  Ten jobs have ten viewers each; their progress is written the way a
worker writes it (``dljobs.jobstore``: claim, report, finish) from this process, so the
API alone is measured.  ``/healthz`` and the job list are polled meanwhile and their
latency printed (p50, p99): figures, not asserts (speed lives in bench/).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

import pytest

from dljobs import jobstore, testsupport
from dljobs.client import parse_sse
from dljobs.db.models import JobEvent
from dljobs.lifecycle import JobStatus
from tests.conftest import require_service
from tests.e2e.conftest import (
    DLJOBS,
    Processes,
    Service,
    create_token,
    free_port,
    service_env,
    wait_ready,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]

JOBS = 10
VIEWERS_PER_JOB = 10  # 100 streams
REPORTS = 60


@pytest.fixture
def api_on_postgres(tmp_path):
    """``dljobs api`` (one gunicorn process) on a fresh PostgreSQL database; no worker."""
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as db_url:
        # one token opens all hundred streams: its own limit (16 by default) raised
        env = service_env(tmp_path / "data", database_url=db_url, max_streams_per_token=200)
        procs = Processes(tmp_path, env)
        procs.run(DLJOBS + ["db", "upgrade"])
        port = free_port()
        procs.start("api", DLJOBS + ["api", "--host", "127.0.0.1", "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, procs)
            yield Service(base, procs, db_url, create_token(procs))
        finally:
            procs.stop()


def _simulate_worker(service, job_id: str, go: threading.Event) -> None:
    go.wait()
    with service.session() as session:
        attempt = jobstore.claim(session, job_id, "sim", os.getpid(), 30)
        for i in range(1, REPORTS + 1):
            time.sleep(0.1)
            jobstore.report(session, job_id, attempt,
                            progress={"iteration": i, "iterations": REPORTS, "epoch": i / 20,
                                      "epochs": 3, "percent": 100 * i / REPORTS, "eta_s": 1.0},
                            points=[{"kind": "iteration", "iteration": i, "epoch": i / 10,
                                     "values": {"loss": 1.0 / i}}])
        jobstore.finish(session, job_id, attempt, JobStatus.SUCCEEDED,
                        metrics={"val_accuracy": 0.5, "train_accuracy": 0.5,
                                 "val_loss": 1.0, "train_loss": 1.0})


def _follow(service, job_id: str, opened: threading.Semaphore, out: list, errors: list) -> None:
    try:
        with service.http.get(f"{service.base_url}/api/v1/jobs/{job_id}/events", stream=True,
                              timeout=(10, 60)) as resp:
            if resp.status_code != 200:
                errors.append(f"{resp.status_code} {resp.text[:200]}")
                return
            lines = resp.iter_lines(decode_unicode=True)
            first = next(lines)  # "retry: 1000": the stream is open
            opened.release()
            out.extend(parse_sse(lines))
            assert first.startswith("retry:")
    except Exception as exc:  # noqa: BLE001 - reported by the test, with the stream it broke
        errors.append(repr(exc))
        opened.release()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


#: The latency probe, in a process of its own: the hundred readers of this process would
#: otherwise add their share of its GIL to every figure.  It polls each path in turn until
#: its stdin closes, then prints {path: [seconds, ...]} (a status other than 200 fails it).
PROBE = """
import json, sys, threading, time, requests
base, token, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
http = requests.Session()
http.headers["Authorization"] = "Bearer " + token
seen = {p: [] for p in paths}
while not done.is_set():
    for p in paths:
        started = time.perf_counter()
        resp = http.get(base + p, timeout=10)
        seen[p].append(time.perf_counter() - started)
        if resp.status_code != 200:
            sys.exit(f"{p}: {resp.status_code} {resp.text[:200]}")
    time.sleep(0.02)
print(json.dumps(seen))
"""


def test_a_hundred_streams_each_complete_and_in_order_while_other_requests_answer(api_on_postgres):
    service = api_on_postgres
    with service.session() as session:
        jobs = [jobstore.create_job(session, {"name": f"many{i}"}, {}, f"many{i}").id for i in range(JOBS)]
    streams = [(job_id, []) for job_id in jobs for _ in range(VIEWERS_PER_JOB)]
    errors: list[str] = []
    opened = threading.Semaphore(0)
    readers = [threading.Thread(target=_follow, args=(service, job_id, opened, out, errors), daemon=True)
               for job_id, out in streams]
    for reader in readers:
        reader.start()
    for _ in readers:
        assert opened.acquire(timeout=60), "a stream did not open"
    assert errors == []

    go = threading.Event()
    workers = [threading.Thread(target=_simulate_worker, args=(service, job_id, go)) for job_id in jobs]
    for worker in workers:
        worker.start()
    probe = subprocess.Popen([sys.executable, "-c", PROBE, service.base_url, service.token, "/healthz",
                              "/api/v1/jobs?limit=20"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    go.set()
    for worker in workers:
        worker.join(timeout=120)
    out, err = probe.communicate("", timeout=60)  # closing its stdin ends the probe
    assert probe.returncode == 0, err
    latency = json.loads(out)
    for thread in workers + readers:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a stream did not end after its job finished"
    assert errors == []

    with service.session() as session:
        logged = {job_id: [(e.id, e.type) for e in session.query(JobEvent).filter_by(job_id=job_id)
                           .order_by(JobEvent.id)] for job_id in jobs}
    for job_id, events in streams:
        assert [(e["id"], e["event"]) for e in events] == logged[job_id]
        assert [e["data"]["iteration"] for e in events if e["event"] == "progress"] == list(
            range(1, REPORTS + 1))
        assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"

    for path, seen in latency.items():
        assert len(seen) >= 10
        print(f"\n{len(streams)} open streams: GET {path} over {len(seen)} requests: "
              f"p50 {1000 * statistics.median(seen):.1f} ms, p99 {1000 * _percentile(seen, 0.99):.1f} ms")
