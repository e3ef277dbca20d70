"""Four SSE clients follow running jobs under gunicorn while other requests stay prompt.

The jobs' progress is written the way a worker writes it (``dljobs.jobstore``: claim,
report, finish) from this process, so the test measures the API alone.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from dljobs import jobstore
from dljobs.client import parse_sse
from dljobs.db.models import JobEvent

pytestmark = pytest.mark.service

N_CLIENTS = 4
REPORTS = 25


def _simulate_worker(service, job_id: str, attempt_box: list):
    """Claim, report REPORTS progress+metric writes 40 ms apart, then succeed."""
    with service.session() as session:
        attempt = jobstore.claim(session, job_id, "sim", os.getpid(), 30)
        attempt_box.append(attempt)
        for i in range(1, REPORTS + 1):
            time.sleep(0.04)
            jobstore.report(session, job_id, attempt,
                            progress={"iteration": i, "iterations": REPORTS, "epoch": i / 5,
                                      "epochs": 5, "percent": 100 * i / REPORTS, "eta_s": 1.0},
                            points=[{"kind": "iteration", "iteration": i, "epoch": i / 5,
                                     "values": {"loss": 1.0 / i}}])
        jobstore.finish(session, job_id, attempt, "succeeded",
                        metrics={"val_accuracy": 0.5, "train_accuracy": 0.5,
                                 "val_loss": 1.0, "train_loss": 1.0})


def _follow(service, job_id, out: list, drop_after: int | None = None):
    """Read the stream; with ``drop_after`` hang up after that many events and resume."""
    last_id = None
    while True:
        headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
        with service.http.get(f"{service.base_url}/api/v1/jobs/{job_id}/events", headers=headers,
                          stream=True, timeout=(5, 30)) as resp:
            assert resp.status_code == 200
            dropped = False
            for event in parse_sse(resp.iter_lines(decode_unicode=True)):
                out.append(event)
                last_id = event["id"]
                if drop_after is not None and len(out) == drop_after:
                    dropped = True
                    drop_after = None
                    break
            if not dropped:
                return  # the server ended the stream: the job finished


def test_four_streams_in_order_with_resume_while_other_requests_are_prompt(api_only,
                                                                          make_spec):
    client = api_only.client()
    jobs = [client.submit(make_spec(f"sse{i}"))["id"] for i in range(N_CLIENTS)]
    streams = {job_id: [] for job_id in jobs}
    readers = [threading.Thread(target=_follow, args=(api_only, job_id, streams[job_id]),
                                kwargs={"drop_after": 7 if i == 0 else None})
               for i, job_id in enumerate(jobs)]
    for reader in readers:
        reader.start()
    time.sleep(0.3)  # every stream is open before the work starts
    attempts = []
    workers = [threading.Thread(target=_simulate_worker, args=(api_only, j, attempts))
               for j in jobs]
    for worker in workers:
        worker.start()

    latencies = []
    while any(w.is_alive() for w in workers):
        for path in ("/healthz", "/api/v1/jobs?limit=5", f"/api/v1/jobs/{jobs[0]}"):
            started = time.monotonic()
            assert api_only.http.get(api_only.base_url + path, timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    for thread in workers + readers:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a stream did not end after its job finished"

    assert len(latencies) >= 6 and max(latencies) < 1.0, latencies
    with api_only.session() as session:
        for job_id, events in streams.items():
            logged = [(e.id, e.type) for e in session.query(JobEvent).filter_by(job_id=job_id)
                      .order_by(JobEvent.id)]
            assert [(e["id"], e["event"]) for e in events] == logged
            progress = [e["data"]["iteration"] for e in events if e["event"] == "progress"]
            assert progress == list(range(1, REPORTS + 1))
            assert events[-1]["event"] == "status"
            assert events[-1]["data"]["status"] == "succeeded"
