"""Jobs per minute of 16 small jobs with 1 and with 2 worker processes (issue 12).

The 16 jobs (the digits MLP of examples/digits_mlp.json, about 0.2 s of training each)
are queued at once, then N real workers (``dljobs worker``, one process each, as
``dljobs up`` and ``docker compose --scale worker=N`` run them, with the product's
default of one BLAS thread per worker) drain the queue.  The figure is 16 jobs over
the time from the first submit to the last ``finished_at``, per minute.  On PostgreSQL
and Redis when both answer on 127.0.0.1 (as the issue measured), else on the embedded
SQLite database and filesystem broker.  Target: 2 workers give at least 1.8x the jobs
per minute of 1 on a 2-core machine.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.service import digits_mlp, submit, worker
from dljobs import testsupport
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus


def drain(data_dir: Path, workers: int, jobs: int, broker_url, database_url) -> dict:
    """Queue ``jobs`` digits MLPs, start ``workers`` workers, wait for all; the figures."""
    spec = digits_mlp()
    spec["name"] = "bench-throughput"
    with ExitStack() as stack:
        settings, _ = stack.enter_context(worker(data_dir, broker_url, database_url, name="worker1"))
        # the second worker starts before any job is queued, so neither gets a head start
        for i in range(2, workers + 1):
            stack.enter_context(worker(data_dir, broker_url, database_url, name=f"worker{i}"))
        sent = [submit(settings, spec) for _ in range(jobs)]
        first_sent = min(t for _, t in sent)
        finished = []
        by_worker: dict[str, int] = {}
        deadline = time.monotonic() + 60 + 10 * jobs
        pending = {job_id for job_id, _ in sent}
        while pending and time.monotonic() < deadline:
            with session_factory(settings)() as session:
                for job_id in list(pending):
                    job = session.get(Job, job_id)
                    if job.finished_at is not None:
                        if job.status != JobStatus.SUCCEEDED:
                            raise RuntimeError(f"job {job_id} {job.status}: {job.error_message}")
                        finished.append(job.finished_at.timestamp())
                        by_worker[str(job.worker_pid)] = by_worker.get(str(job.worker_pid), 0) + 1
                        pending.discard(job_id)
            time.sleep(0.05)
        if pending:
            raise TimeoutError(f"{len(pending)} of {jobs} jobs unfinished with {workers} worker(s)")
    wall = max(finished) - first_sent
    # jobs per training process: a worker that took most of them says the queue did not spread
    return {"jobs": jobs, "wall_s": round(wall, 2), "jobs_per_minute": round(60 * jobs / wall, 1),
            "jobs_per_process": sorted(by_worker.values(), reverse=True)}


def run(jobs: int = 16, worker_counts: tuple[int, ...] = (1, 2)) -> dict:
    """{"<workers>": {"jobs", "wall_s", "jobs_per_minute", "jobs_per_process"}, "backend", "speedup"}."""
    real = testsupport.postgres_available() and testsupport.redis_available()
    out: dict = {"backend": "postgresql+redis" if real else "embedded"}
    for n in worker_counts:
        with tempfile.TemporaryDirectory(prefix="dljobs-bench-throughput-") as tmp, ExitStack() as stack:
            broker_url = database_url = None
            if real:
                database_url = stack.enter_context(testsupport.fresh_postgres_database())
                broker_url = stack.enter_context(testsupport.fresh_redis_url())
            out[str(n)] = drain(Path(tmp), n, jobs, broker_url, database_url)
    if "1" in out and "2" in out:
        out["speedup"] = round(out["2"]["jobs_per_minute"] / out["1"]["jobs_per_minute"], 3)
    return out


def table(figures: dict) -> str:
    rows = [f"  {n} worker(s): {figures[n]['jobs']} jobs in {figures[n]['wall_s']} s, "
            f"{figures[n]['jobs_per_minute']} jobs/min" for n in figures if n.isdigit()]  # fmt: skip
    return "\n".join([f"throughput ({figures['backend']})", *rows, f"  speedup {figures.get('speedup')}"])


if __name__ == "__main__":
    figures = run()
    print(table(figures))
