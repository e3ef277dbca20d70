"""The end-to-end flows, run against the embedded default and against PostgreSQL + Redis.

Each takes a ``Service`` (see conftest.py) and talks to it over HTTP with the client,
reading the database only to check what HTTP does not show (event log, timings).
"""

from __future__ import annotations

import io
import time
from datetime import timedelta

import numpy as np
from sklearn.datasets import load_digits
from sqlalchemy import select

from dlcore.loading import load_model
from dljobs import jobstore
from dljobs.db.models import Artifact, Job, JobEvent

WAIT_S = 240


def digits_samples(n: int = 24) -> np.ndarray:
    """Real digits as the dataset gives them: (N, 1, 8, 8), values 0-16."""
    return load_digits().images[:n, None].astype(np.float64)


def eight_jobs_flow(service, make_spec) -> None:
    client = service.client()
    ids = [client.submit(make_spec(f"e2e-{i}", seed=i))["id"] for i in range(8)]
    jobs = [client.wait(job_id, timeout=WAIT_S, poll_s=0.3) for job_id in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 8, [
        (j["status"], j["error"]) for j in jobs]
    workers = {(j["worker"]["host"], j["worker"]["pid"]) for j in jobs}
    assert len(workers) >= 2, f"only {workers} took jobs"
    x = digits_samples()
    for job in jobs:
        assert job["attempt"] == 1 and job["progress"]["percent"] == 100.0
        assert job["metrics"]["val_accuracy"] > 0.8, job["metrics"]
        points = client.metrics(job["id"])
        steps = [p["step"] for p in points]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)
        epochs = [p for p in points if p["kind"] == "epoch"]
        assert len(epochs) == 2
        assert epochs[-1]["values"]["val_accuracy"] == job["metrics"]["val_accuracy"]
        model = load_model(io.BytesIO(client.download_model(job["id"])))
        answer = client.predict(job["id"], x)
        assert answer["predictions"] == [int(p) for p in model.predict(x)]
        np.testing.assert_allclose(answer["probabilities"], model.predict_proba(x), rtol=1e-5,
                                   atol=1e-7)


def _wait_for(predicate, timeout: float, what: str, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")


def _status_events(session, job_id: str) -> list[tuple]:
    rows = session.execute(select(JobEvent.data, JobEvent.created_at)
                           .where(JobEvent.job_id == job_id, JobEvent.type == "status")
                           .order_by(JobEvent.id)).all()
    return [(r.data["status"], r.created_at) for r in rows]


def cancel_flow(service, make_spec) -> None:
    """Cancel two running jobs and a queued one; then a new job still runs."""
    client = service.client()

    def long_spec(name):  # a minute or more of training if nobody stops it (400 epochs took only 3 s)
        return make_spec(name, epochs=10_000)

    running = [client.submit(long_spec(f"long-{i}"))["id"] for i in range(2)]
    for job_id in running:
        _wait_for(lambda job_id=job_id: (client.get(job_id)["progress"].get("iteration") or 0) > 5,
                  WAIT_S, f"{job_id} to train")
    queued = client.submit(long_spec("queued"))["id"]
    time.sleep(1.0)  # both workers are busy: it must still be waiting
    assert client.get(queued)["status"] == "queued", [client.get(j)["status"] for j in running]
    answer = client.cancel(queued)
    assert answer["status"] == "cancelled" and answer["started_at"] is None

    for job_id in running:
        answer = client.cancel(job_id)
        assert answer["status"] in ("cancelling", "cancelled"), answer
        assert client.cancel(job_id)["status"] in ("cancelling", "cancelled")  # idempotent
        done = client.wait(job_id, timeout=30, poll_s=0.05)
        assert done["status"] == "cancelled", done
    with service.session() as session:
        for job_id in running:
            events = _status_events(session, job_id)
            asked = next(t for s, t in events if s == "cancelling")
            ended = next(t for s, t in events if s == "cancelled")
            iteration_s = _iteration_seconds(session, job_id)
            # The worker checks at most every 0.5 s, then stops at the next iteration.
            print(f"cancel of {job_id}: {(ended - asked).total_seconds():.3f} s "
                  f"(one iteration {iteration_s * 1000:.1f} ms)")
            assert ended - asked <= timedelta(seconds=0.5 + iteration_s + 0.5), (
                ended - asked, iteration_s)
            # Whatever the clock says: once a write of the worker has seen the request,
            # at most one more iteration is trained.
            seen = _iterations_written_after_the_cancel(session, job_id)
            assert seen, "no progress was written after the cancel request"
            assert session.get(Job, job_id).progress["iteration"] - seen[0] <= 1, seen

    # The queue is first in, first out: once a job sent after the cancelled one has run,
    # the cancelled job's message has been delivered (and dropped).
    after = client.submit(make_spec("after-cancel"))["id"]
    assert client.wait(after, timeout=WAIT_S, poll_s=0.2)["status"] == "succeeded"
    assert client.get(queued)["status"] == "cancelled"
    with service.session() as session:
        assert [s for s, _ in _status_events(session, queued)] == ["queued", "cancelled"]
        never_ran = session.get(Job, queued)
        assert never_ran.worker_host is None and never_ran.attempt == 0
        assert never_ran.started_at is None


def _iterations_written_after_the_cancel(session, job_id: str) -> list[int]:
    """Progress iterations written by the worker after the "cancelling" status event."""
    events = session.execute(select(JobEvent.type, JobEvent.data).where(JobEvent.job_id == job_id)
                             .order_by(JobEvent.id)).all()
    asked = next(i for i, e in enumerate(events)
                 if e.type == "status" and e.data["status"] == "cancelling")
    return [e.data["iteration"] for e in events[asked:] if e.type == "progress"]


def _iteration_seconds(session, job_id: str) -> float:
    job = session.get(Job, job_id)
    progress = job.progress or {}
    iterations = progress.get("iteration") or 1
    spent = (job.finished_at - job.started_at).total_seconds()
    return spent / max(1, iterations)


def duplicate_delivery_flow(service, make_spec) -> None:
    """The same Celery message sent again (while queued and after the end) trains once."""
    client = service.client()
    settings = service.settings()
    job_id = client.submit(make_spec("twice"))["id"]
    jobstore.enqueue(job_id, settings)  # a second delivery of the same message
    job = client.wait(job_id, timeout=WAIT_S, poll_s=0.2)
    assert job["status"] == "succeeded"
    jobstore.enqueue(job_id, settings)  # and a late one
    # A later job finishing means the duplicates ahead of it were taken off the queue.
    for i in range(2):
        flush = client.submit(make_spec(f"flush-{i}"))["id"]
        assert client.wait(flush, timeout=WAIT_S, poll_s=0.2)["status"] == "succeeded"
    with service.session() as session:
        statuses = [s for s, _ in _status_events(session, job_id)]
        assert statuses == ["queued", "running", "succeeded"], statuses
        row = session.get(Job, job_id)
        assert row.attempt == 1
        models = session.execute(select(Artifact.id).where(Artifact.job_id == job_id,
                                                          Artifact.kind == "model")).all()
        assert len(models) == 1
    assert client.get(job_id)["attempt"] == 1


def sse_flow(service, make_spec) -> None:
    """Four clients follow four real jobs' event streams; one hangs up and resumes."""
    import threading

    client = service.client()
    ids = [client.submit(make_spec(f"sse-{i}", epochs=25, seed=i))["id"] for i in range(4)]
    streams: dict[str, list] = {job_id: [] for job_id in ids}
    failures: list[BaseException] = []

    def follow(job_id: str, hang_up_after: int | None) -> None:
        try:
            own = service.client()
            out = streams[job_id]
            for event in own.events(job_id):
                out.append(event)
                if hang_up_after is not None and len(out) == hang_up_after:
                    break
            if hang_up_after is not None:
                out.extend(own.events(job_id, last_event_id=out[-1]["id"]))
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            failures.append(exc)

    readers = [threading.Thread(target=follow, args=(job_id, 3 if i == 0 else None))
               for i, job_id in enumerate(ids)]
    for reader in readers:
        reader.start()
    latencies = []
    while any(r.is_alive() for r in readers):
        started = time.monotonic()
        client.list(limit=10)
        latencies.append(time.monotonic() - started)
        time.sleep(0.1)
        assert len(latencies) < 3000, "streams did not end"
    assert not failures, failures
    assert max(latencies) < 1.0, max(latencies)
    with service.session() as session:
        for job_id, events in streams.items():
            logged = session.execute(select(JobEvent.id).where(JobEvent.job_id == job_id)
                                     .order_by(JobEvent.id)).scalars().all()
            assert [e["id"] for e in events] == list(logged)
            statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
            assert statuses == ["queued", "running", "succeeded"], statuses
            iterations = [e["data"]["iteration"] for e in events if e["event"] == "progress"]
            assert iterations == sorted(iterations) and iterations
