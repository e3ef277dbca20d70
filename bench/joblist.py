"""The scale figures of `make bench`: the job list at 100,000 jobs, the chart at a million points.

A fresh PostgreSQL database gets 100,000 jobs (COPY: statuses as a service that has run
a while has them, names, specs, progress and metrics, over 100 days and ten owners) and
one job with 1,000,000 metric points.  ``dljobs api`` (front door, one gunicorn process)
serves it, and over loopback, one request at a time:

- ``GET /api/v1/jobs`` (the default page), as an admin and as one owner;
- ``GET /api/v1/jobs?status=running,queued`` (the active jobs: few among many) and
  ``?status=failed`` (a common one);
- ``GET /api/v1/jobs/<id>/metrics?max_points=1000`` of the million-point job: a chart's
  request.  A build without ``max_points`` (downsampling) answers it 400; the figure is
  then the first page of 1,000 points (``chart_downsampled: false``);
- ``GET /metrics``: a scrape, which aggregates every job in the database.

p50 and p95 of each (after a few warm-up requests).  ``python -m bench.joblist`` prints
them and merges ``service.joblist`` into bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import requests

from bench import results_file
from bench.results_file import RESULTS
from dljobs import testsupport, tokens
from dljobs.db.migrate import upgrade
from dljobs.embedded import free_port, wait_ready
from dljobs.lifecycle import JobStatus
from dljobs.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

#: The share of each status among the stored jobs (the rest succeeded).
STATUS_SHARES = {JobStatus.FAILED: 0.08, JobStatus.CANCELLED: 0.04, JobStatus.RUNNING: 0.0005,
                 JobStatus.QUEUED: 0.001}
OWNERS = 10


def _spec() -> dict:
    return json.loads((ROOT / "examples" / "digits_mlp.json").read_text())


def _status(rng: random.Random) -> JobStatus:
    draw = rng.random()
    for status, share in STATUS_SHARES.items():
        if draw < share:
            return status
        draw -= share
    return JobStatus.SUCCEEDED


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def insert_jobs(database_url: str, n: int, seed: int = 0) -> str:
    """COPY ``n`` jobs into ``jobs``; returns the id of one succeeded job."""
    rng = random.Random(seed)
    spec = json.dumps(_spec())
    now = datetime.now(UTC)
    columns = ("id, name, spec, status, attempt, max_attempts, handbacks, created_at, started_at, "
               "finished_at, progress, metrics, summary, owner")
    one_succeeded = None
    with psycopg.connect(_pg_dsn(database_url)) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
            for i in range(n):
                status = _status(rng)
                created = now - timedelta(seconds=(n - i) * 86.4)  # 100,000 jobs over 100 days
                started = None if status == JobStatus.QUEUED else created + timedelta(seconds=rng.uniform(0.1, 30))
                finished = (started + timedelta(seconds=rng.uniform(5, 3600))
                            if status not in (JobStatus.QUEUED, JobStatus.RUNNING) else None)
                progress = None if started is None else json.dumps(
                    {"epoch": 5.0, "epochs": 10, "iteration": 500, "iterations": 1000, "percent": 50.0,
                     "eta_s": 12.0})
                metrics = None if finished is None else json.dumps(
                    {"train_loss": 0.1, "train_accuracy": 0.97, "val_loss": 0.12, "val_accuracy": 0.95})
                job_id = uuid.UUID(int=rng.getrandbits(128)).hex
                if status == JobStatus.SUCCEEDED and one_succeeded is None:
                    one_succeeded = job_id
                copy.write_row((job_id, f"sweep-{i // 100}-trial-{i % 100}", spec, status.value, 1, 3, 0,
                                created, started, finished, progress, metrics, json.dumps({"params": 10}),
                                f"owner{i % OWNERS}"))
        conn.commit()
    return one_succeeded


def insert_metric_points(database_url: str, job_id: str, n: int, chunk: int = 50_000) -> None:
    """COPY ``n`` iteration points of one job into ``metric_points`` (text rows, a chunk at a time)."""
    now = datetime.now(UTC).isoformat()
    with psycopg.connect(_pg_dsn(database_url)) as conn, conn.cursor() as cur:
        with cur.copy("COPY metric_points (job_id, step, kind, iteration, epoch, values, attempt, "
                      "created_at) FROM STDIN") as copy:
            for start in range(0, n, chunk):
                # no tab, newline or backslash in any value: COPY's text format needs no escaping
                copy.write("".join(
                    f'{job_id}\t{step}\titeration\t{step + 1}\t{step / 1000}\t'
                    f'{{"loss": {2.3 / (1 + step / 1000):.6f}, "lr": 0.01}}\t1\t{now}\n'
                    for step in range(start, min(n, start + chunk))))
        conn.commit()


def vacuum(database_url: str) -> None:
    """As autovacuum leaves tables that have lived a while: statistics, and the visibility map of
    ``jobs`` (its index-only scans need it); the chart reads every point's row anyway."""
    with psycopg.connect(_pg_dsn(database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("ANALYZE metric_points")


def _timings(http: requests.Session, url: str, requests_n: int, warmup: int = 5) -> tuple[list[float], int]:
    """Seconds of ``requests_n`` GETs of ``url`` (after ``warmup``), and the status they answered."""
    status = None
    for _ in range(warmup):
        status = http.get(url, timeout=60).status_code
    out = []
    for _ in range(requests_n):
        began = time.perf_counter()
        resp = http.get(url, timeout=60)
        out.append(time.perf_counter() - began)
        status = resp.status_code
    return out, status


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1e3, q)), 1)


def run(jobs: int = 100_000, points: int = 1_000_000, requests_n: int = 200) -> dict | None:
    """The ``joblist`` figures, or None without PostgreSQL on 127.0.0.1."""
    if not testsupport.postgres_available():
        return None
    dljobs_cli = str(Path(sys.executable).parent / "dljobs")
    with tempfile.TemporaryDirectory(prefix="dljobs-bench-joblist-") as tmp, \
            testsupport.fresh_postgres_database() as db_url:
        upgrade(db_url)
        began = time.perf_counter()
        chart_job = insert_jobs(db_url, jobs)
        insert_metric_points(db_url, chart_job, points)
        vacuum(db_url)
        fill_s = time.perf_counter() - began
        # deferred: the session factory only for the database this run created
        from dljobs.db.session import session_factory

        with session_factory(Settings(database_url=db_url))() as session:
            admin = tokens.create_token(session, "bench-admin", admin=True)
            owner = tokens.create_token(session, "bench-owner", owner="owner3")
        env = dict(os.environ, DLJOBS_DATABASE_URL=db_url, DLJOBS_DATA_DIR=tmp)
        env.pop("DLJOBS_BROKER_URL", None)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(Path(tmp) / "api.log", "wb") as log:
            api = subprocess.Popen([dljobs_cli, "api", "--port", str(port)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(base, 60, api)
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {admin}"
            as_owner = requests.Session()
            as_owner.headers["Authorization"] = f"Bearer {owner}"
            figures: dict = {"jobs": jobs, "points": points, "requests": requests_n,
                             "fill_s": round(fill_s, 1)}
            for key, session, path in (
                ("joblist_100k", http, "/api/v1/jobs"),
                ("joblist_100k_owner", as_owner, "/api/v1/jobs"),
                ("joblist_100k_status", http, "/api/v1/jobs?status=running,queued"),
                ("joblist_100k_status_failed", http, "/api/v1/jobs?status=failed"),
            ):
                seen, status = _timings(session, base + path, requests_n)
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}")
                figures[f"{key}_p50_ms"] = _p(seen, 50)
                figures[f"{key}_p95_ms"] = _p(seen, 95)
            chart = f"{base}/api/v1/jobs/{chart_job}/metrics?max_points=1000"
            seen, status = _timings(http, chart, max(20, requests_n // 10), warmup=2)
            if status != 200:
                raise RuntimeError(f"GET {chart} answered {status}")
            figures["chart_1m_points_ms"] = _p(seen, 50)
            figures["chart_1m_points_p95_ms"] = _p(seen, 95)
            # The `/` page is a shell whose rows come from GET /api/v1/jobs (measured above).
            seen, status = _timings(http, f"{base}/", requests_n)
            if status != 200:
                raise RuntimeError(f"GET / answered {status}")
            figures["joblist_page_100k_p95_ms"] = _p(seen, 95)
            # /metrics aggregates every job at each scrape (statuses, the duration histogram)
            seen, status = _timings(http, f"{base}/metrics", max(20, requests_n // 10), warmup=2)
            if status != 200:
                raise RuntimeError(f"GET /metrics answered {status}")
            figures["metrics_scrape_100k_p50_ms"] = _p(seen, 50)
        finally:
            testsupport.stop_process_group(api, grace_s=15)
    return figures


def table(figures: dict | None) -> str:
    if not figures:
        return "  job list at scale: skipped (needs PostgreSQL on 127.0.0.1)"
    rows = [f"  job list, {figures['jobs']:,} jobs ({figures['requests']} requests each):"]
    for key, title in (("joblist_100k", "GET /jobs"), ("joblist_100k_owner", "GET /jobs (one owner)"),
                       ("joblist_100k_status", "GET /jobs?status=running,queued"),
                       ("joblist_100k_status_failed", "GET /jobs?status=failed")):
        rows.append(f"    {title:<34} p50 {figures[key + '_p50_ms']:7.1f} ms   p95 {figures[key + '_p95_ms']:7.1f} ms")
    rows.append(f"    chart of {figures['points']:,} points, max_points=1000 p50 {figures['chart_1m_points_ms']:7.1f} ms"
                f"   p95 {figures['chart_1m_points_p95_ms']:7.1f} ms")
    rows.append(f"    GET / (the job list page's shell)              p95 {figures['joblist_page_100k_p95_ms']:7.1f} ms")
    rows.append(f"    GET /metrics (a scrape){'':<18} p50 {figures['metrics_scrape_100k_p50_ms']:7.1f} ms")
    return "\n".join(rows)


def write_results(figures: dict | None, path: Path = RESULTS) -> None:
    """Merge ``figures`` into ``service.joblist`` of bench/results.json, keeping the rest."""
    results_file.merge(("service", "joblist"), figures, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.joblist", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    figures = run(args.jobs, args.points, args.requests)
    print(table(figures))
    write_results(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
