"""metric_points.loss: ``values["loss"]`` as a typed column, filled by every writer and by
migration 0009 for the rows already stored, and the chart's SQL bucketing over it: every
step bucket's lowest and highest loss kept (a NaN, stored as null, as the highest), on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sqlalchemy import insert, select, text

from dljobs import jobstore, queries, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job, MetricPoint, finite_loss
from dljobs.db.session import make_engine, session_factory
from tests.conftest import require_service

SPEC = {"dataset": {"type": "digits"}, "training": {"epochs": 1}}


def test_every_insert_fills_the_loss_column_and_a_non_number_is_null(settings):
    with session_factory(settings)() as session:
        job = jobstore.create_job(session, SPEC, None)
        attempt = jobstore.claim(session, job.id, "h", 1, 60)
        point = {"kind": "iteration", "epoch": 0.1}
        jobstore.report(session, job.id, attempt, points=[
            dict(point, iteration=1, values={"loss": 2.5, "lr": 0.1}),
            dict(point, iteration=2, values={"loss": None}),  # a NaN loss, as the runner stores it
            dict(point, iteration=3, values={"loss": 3}),
            dict(point, iteration=4, values={"loss": "high"}),
            dict(point, iteration=5, values={"loss": True}),
            {"kind": "epoch", "iteration": 5, "epoch": 1.0, "values": {"val_loss": 1.0}},
        ])
        session.execute(insert(MetricPoint), [{"job_id": job.id, "step": 10, "kind": "iteration", "iteration": 6,
                                               "epoch": 0.6, "values": {"loss": 0.5}}])
        session.add(MetricPoint(job_id=job.id, step=11, kind="iteration", iteration=7, epoch=0.7,
                                values={"loss": 0.25}))
        session.commit()
        losses = session.execute(select(MetricPoint.loss).where(MetricPoint.job_id == job.id)
                                 .order_by(MetricPoint.step)).scalars().all()
    assert losses == [2.5, None, 3.0, None, None, None, 0.5, 0.25]
    # JSON has no NaN or infinity to store; a writer that passes one gets a null loss
    assert [finite_loss({"loss": value}) for value in (math.nan, math.inf, -math.inf)] == [None] * 3
    assert finite_loss({"loss": np.float32(0.5)}) == 0.5 and finite_loss([1.0]) is None


def _check_backfill(url: str) -> None:
    upgrade(url, "0006")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO jobs (id, spec, status, attempt, max_attempts, handbacks, "
                                    "created_at) VALUES ('j1', '{}', 'running', 1, 5, 0, CURRENT_TIMESTAMP)"))
            for step, values in enumerate([{"loss": 1.5}, {"loss": None}, {"loss": "x"}, {"lr": 0.1}, {"loss": 2}]):
                connection.execute(
                    text('INSERT INTO metric_points (job_id, step, kind, iteration, epoch, "values", created_at) '
                         "VALUES ('j1', :step, 'iteration', :step, 0.0, :values, CURRENT_TIMESTAMP)"),
                    {"step": step, "values": json.dumps(values)})
        upgrade(url)
        with engine.connect() as connection:
            losses = connection.execute(text("SELECT loss FROM metric_points ORDER BY step")).scalars().all()
        assert losses == [1.5, None, None, None, 2.0]
    finally:
        engine.dispose()


def test_migration_0009_fills_the_loss_of_stored_points_on_sqlite(tmp_path):
    _check_backfill(f"sqlite:///{tmp_path / 'b.sqlite'}")


@pytest.mark.service
def test_migration_0009_fills_the_loss_of_stored_points_on_postgresql():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        _check_backfill(url)


def _bucket_extremes(steps: np.ndarray, losses: np.ndarray, lo: int, width: int) -> set[int]:
    """The reference, one bucket at a time in Python: the sets of steps that may be kept."""
    allowed = set()
    for bucket in np.unique((steps - lo) // width):
        inside = (steps - lo) // width == bucket
        ranked = np.where(np.isnan(losses[inside]), np.inf, losses[inside])
        allowed.add((frozenset(steps[inside][ranked == ranked.min()].tolist()),
                     frozenset(steps[inside][ranked == ranked.max()].tolist())))
    return allowed


@pytest.mark.slow
def test_sql_bucketing_keeps_each_buckets_lowest_and_highest_loss(settings):
    rng = np.random.default_rng(7)
    n, max_points = 20_000, 202
    losses = rng.random(n) + np.linspace(3, 0, n)
    losses[rng.choice(n, 30, replace=False)] = np.nan
    losses[12_345] = 50.0
    # epoch points between the iterations: the iteration steps have gaps, as in a real run
    epoch_at = set(range(500, 2 * n, 501))
    factory = session_factory(settings)
    with factory() as session:
        job = Job(name="long", spec={}, status="running")
        session.add(job)
        session.commit()
        rows, steps, step = [], [], 0
        for i in range(n):
            while step in epoch_at:
                rows.append({"job_id": job.id, "step": step, "kind": "epoch", "iteration": i, "epoch": 1.0,
                             "values": {"train_loss": 1.0, "val_loss": 1.0}})
                step += 1
            loss = None if math.isnan(losses[i]) else float(losses[i])
            rows.append({"job_id": job.id, "step": step, "kind": "iteration", "iteration": i + 1,
                         "epoch": i / 100, "values": {"loss": loss}})
            steps.append(step)
            step += 1
        session.execute(insert(MetricPoint), rows)
        session.commit()
        kept = queries.downsampled_metric_points(session, job.id, -1, max_points, "iteration")
        later = queries.downsampled_metric_points(session, job.id, steps[15_000], max_points, "iteration")
    steps = np.array(steps)
    kept_steps = [p.step for p in kept]
    assert len(kept) <= max_points and kept_steps == sorted(set(kept_steps))
    assert kept_steps[0] == steps[0] and kept_steps[-1] == steps[-1]
    assert any(p.values["loss"] == 50.0 for p in kept) and any(p.values["loss"] is None for p in kept)
    buckets = (max_points - 2) // 2
    width = (steps[-1] - steps[0]) // buckets + 1
    for lowest, highest in _bucket_extremes(steps, losses, int(steps[0]), int(width)):
        assert lowest & set(kept_steps) and highest & set(kept_steps)
    # after a step: the buckets span only the later points, so all 5,000 are covered anew
    later_steps = [p.step for p in later]
    assert later_steps[0] == steps[15_001] and later_steps[-1] == steps[-1] and len(later) <= max_points
    tail = steps[15_001:]
    tail_width = (tail[-1] - tail[0]) // buckets + 1
    for lowest, highest in _bucket_extremes(tail, losses[15_001:], int(tail[0]), int(tail_width)):
        assert lowest & set(later_steps) and highest & set(later_steps)


def test_few_points_over_a_wide_step_range_come_whole(settings):
    """A sparse history (epoch points between iterations) is judged by its count, not its span."""
    with session_factory(settings)() as session:
        job = Job(name="sparse", spec={}, status="running")
        session.add(job)
        session.commit()
        session.execute(insert(MetricPoint), [
            {"job_id": job.id, "step": 10 * i, "kind": "iteration", "iteration": i + 1, "epoch": 0.0,
             "values": {"loss": float(i)}} for i in range(50)])
        session.commit()
        points = queries.downsampled_metric_points(session, job.id, -1, 60, "iteration")
    assert [p.step for p in points] == [10 * i for i in range(50)]
