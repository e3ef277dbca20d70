"""The chart endpoint at a million points: ``GET /jobs/<id>/metrics?max_points=2000``.

A job with ``points`` iteration points (one spike, one NaN loss) is written straight into
a fresh database by SQL (SQLite, and PostgreSQL when it is reachable), then the endpoint
is called through the app a few times: the median and best wall time, the API process's
CPU time, and whether the spike and the NaN survived the downsampling.
``run()`` answers the figures ``make bench`` records (``chart_1m_points_<db>_ms`` and
``..._best_ms``); run alone: ``.venv/bin/python -m bench.chart_points``.
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

#: The loss of point i: it decays, with one spike at a third of the run and a NaN (stored
#: as null, as the writers do) at two thirds.
LOSS = "CASE WHEN i = :n / 3 THEN :spike WHEN i = 2 * (:n / 3) THEN NULL ELSE 1.0 / (1 + i / 1000.0) END"

#: The fill, by SQL on each database (so ``loss`` is written here, as the model's default would).
FILL = {
    "sqlite": f"""WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < :n)
        INSERT INTO metric_points (job_id, step, kind, iteration, epoch, "values", loss, attempt, created_at)
        SELECT :job, i, 'iteration', i + 1, i / 1000.0, json_object('loss', loss, 'lr', 0.01), loss,
               1, CURRENT_TIMESTAMP FROM (SELECT i, {LOSS} AS loss FROM seq)""",
    "postgresql": f"""INSERT INTO metric_points (job_id, step, kind, iteration, epoch, "values", loss, attempt, created_at)
        SELECT :job, i, 'iteration', i + 1, i / 1000.0, json_build_object('loss', loss, 'lr', 0.01), loss,
               1, now() FROM (SELECT i, {LOSS} AS loss FROM generate_series(0, :n - 1) AS i) AS fill""",
}


def measure(database_url: str, points: int, max_points: int = 2000, rounds: int = 5,
            vacuum: bool = True) -> dict:
    """Fill ``database_url`` (migrated here) with one job of ``points`` points and time the endpoint.

    ``vacuum=False`` times PostgreSQL straight after the inserts, before autovacuum's pass.
    """
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    with sessionmaker(bind=engine)() as session:
        job = Job(name="million", spec={}, status=JobStatus.SUCCEEDED.value)
        session.add(job)
        session.commit()
        job_id = job.id
        session.execute(text(FILL[engine.dialect.name]), {"job": job_id, "n": points, "spike": SPIKE})
        session.commit()
    if vacuum and engine.dialect.name == "postgresql":
        # What autovacuum does soon after a long run's inserts: statistics for the planner,
        # and the visibility map that lets the chart's query read the index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE metric_points")
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
            "spike_kept": any(p["values"]["loss"] == SPIKE for p in kept),
            "nan_kept": any(p["values"]["loss"] is None for p in kept)}


def measurements(points: int = 1_000_000, rounds: int = 5) -> list[dict]:
    """One :func:`measure` per database: SQLite, then PostgreSQL when it is reachable."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        results.append(measure(f"sqlite:///{Path(folder) / 'chart.sqlite'}", points, rounds=rounds))
    if testsupport.postgres_available():
        with testsupport.fresh_postgres_database() as url:
            results.append(measure(url, points, rounds=rounds))
    return results


#: The database's name in a figure's key (``chart_1m_points_postgres_ms``).
FIGURE_NAMES = {"sqlite": "sqlite", "postgresql": "postgres"}


def run(points: int = 1_000_000, rounds: int = 5) -> dict:
    """The figures ``make bench`` records: per database, the endpoint's median and best
    milliseconds at ``points`` points, the points answered, and whether spike and NaN stayed."""
    figures: dict = {}
    for result in measurements(points, rounds):
        key = f"chart_{_count_name(points)}_points_{FIGURE_NAMES[result['database']]}"
        figures[f"{key}_ms"] = round(1000 * result["wall_median_s"])
        figures[f"{key}_best_ms"] = round(1000 * result["wall_min_s"])
        figures[f"{key}_answered"] = result["answered"]
        figures[f"{key}_spike_and_nan_kept"] = result["spike_kept"] and result["nan_kept"]
    return figures


def _count_name(points: int) -> str:
    """1_000_000 -> "1m", 50_000 -> "50k", 123 -> "123": the figure names say the size."""
    for size, suffix in ((1_000_000, "m"), (1_000, "k")):
        if points >= size and points % size == 0:
            return f"{points // size}{suffix}"
    return str(points)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    for result in measurements(args.points, args.rounds):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
