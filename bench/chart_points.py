"""The chart endpoint at a million points: ``GET /jobs/<id>/metrics?max_points=2000``.

A job with ``points`` iteration points (one spike) is written straight into a fresh
database by SQL (SQLite, and PostgreSQL when it is reachable), then the endpoint is
called through the app a few times: the median wall time, the API process's CPU time,
and whether the spike survived the downsampling.  Run alone:
``.venv/bin/python -m bench.chart_points`` (not yet part of ``make bench``'s table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from api import create_app
from dljobs import testsupport
from dljobs.db import migrate
from dljobs.db.models import Job
from dljobs.db.session import make_engine
from dljobs.lifecycle import JobStatus
from dljobs.testsupport import admin_test_client

SPIKE = 40.0

#: The fill, by SQL on each database: loss decays, one spike at a third of the run.
FILL = {
    "sqlite": """WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
        INSERT INTO metric_points (job_id, step, kind, iteration, epoch, "values", attempt, created_at)
        SELECT :job, i, 'iteration', i + 1, i / 1000.0,
               json_object('loss', CASE WHEN i = :n / 3 THEN :spike ELSE 1.0 / (1 + i / 1000.0) END, 'lr', 0.01),
               1, CURRENT_TIMESTAMP FROM seq""",
    "postgresql": """INSERT INTO metric_points (job_id, step, kind, iteration, epoch, "values", attempt, created_at)
        SELECT :job, i, 'iteration', i + 1, i / 1000.0,
               json_build_object('loss', CASE WHEN i = :n / 3 THEN :spike ELSE 1.0 / (1 + i / 1000.0) END, 'lr', 0.01),
               1, now() FROM generate_series(0, :n - 1) AS i""",
}


def measure(database_url: str, points: int, max_points: int = 2000, rounds: int = 5) -> dict:
    """Fill ``database_url`` (migrated here) with one job of ``points`` points and time the endpoint."""
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    with sessionmaker(bind=engine)() as session:
        job = Job(name="million", spec={}, status=JobStatus.SUCCEEDED.value)
        session.add(job)
        session.commit()
        job_id = job.id
        session.execute(text(FILL[engine.dialect.name]), {"job": job_id, "n": points, "spike": SPIKE})
        session.commit()
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "DATA_DIR": tempfile.mkdtemp(),
                      "DLJOBS_ENQUEUE": lambda job_id: None, "DLJOBS_BROKER_CHECK": lambda: None})
    client = admin_test_client(app)
    walls, cpus, answer = [], [], None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        answer = client.get(f"/api/v1/jobs/{job_id}/metrics?max_points={max_points}")
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert answer.status_code == 200, answer.get_data(as_text=True)
    kept = answer.get_json()["points"]
    engine.dispose()
    return {"database": engine.dialect.name, "points": points, "answered": len(kept),
            "wall_median_s": round(statistics.median(walls), 3), "wall_min_s": round(min(walls), 3),
            "api_cpu_median_s": round(statistics.median(cpus), 3),
            "spike_kept": any(p["values"]["loss"] == SPIKE for p in kept)}


def run(points: int = 1_000_000) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        results.append(measure(f"sqlite:///{Path(folder) / 'chart.sqlite'}", points))
    if testsupport.postgres_available():
        with testsupport.fresh_postgres_database() as url:
            results.append(measure(url, points))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    for result in run(args.points):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
