"""dljobs.queries.downsampled_metric_points on SQLite and PostgreSQL: the columns come packed
from the database, the kept points whole, spikes and NaN losses included."""

from __future__ import annotations

import math

from sqlalchemy import insert

from dljobs import queries
from dljobs.db.models import Job, MetricPoint
from dljobs.db.session import session_factory

N = 3000
SPIKE = 1234
BROKEN = 2222


def _job_with_history(settings) -> tuple:
    factory = session_factory(settings)
    with factory() as session:
        job = Job(name="long", spec={}, status="running")
        session.add(job)
        session.commit()
        rows = [{"job_id": job.id, "step": i, "kind": "iteration", "iteration": i + 1,
                 "epoch": i / 100, "attempt": 1,
                 "values": {"loss": (40.0 if i == SPIKE else None if i == BROKEN else 1.0 / (1 + i)),
                            "lr": 0.1}}
                for i in range(N)]
        rows += [{"job_id": job.id, "step": N + e, "kind": "epoch", "iteration": (e + 1) * 100,
                  "epoch": float(e + 1), "attempt": 1,
                  "values": {"train_loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1),
                             "val_accuracy": 0.5, "confusion": [[1, 0], [0, 1]]}}
                 for e in range(30)]
        session.execute(insert(MetricPoint), rows)
        session.commit()
        return factory, job.id


def test_downsampled_history_keeps_spike_nan_and_ends(settings):
    factory, job_id = _job_with_history(settings)
    with factory() as session:
        points = queries.downsampled_metric_points(session, job_id, -1, 100)
    iterations = [p for p in points if p.kind == "iteration"]
    epochs = [p for p in points if p.kind == "epoch"]
    assert 4 <= len(iterations) <= 100
    assert len(epochs) == 30  # fewer than max_points: all of them, whole
    assert epochs[-1].values["confusion"] == [[1, 0], [0, 1]]
    steps = [p.step for p in iterations]
    assert {0, SPIKE, BROKEN, N - 1} <= set(steps)
    assert [p.step for p in points] == sorted(p.step for p in points)
    assert any(p.values["loss"] == 40.0 for p in iterations)
    assert any(p.values["loss"] is None for p in iterations)
    assert all(p.values["lr"] == 0.1 for p in iterations)  # the kept rows come whole


def test_since_and_kind_narrow_the_downsampled_history(settings):
    factory, job_id = _job_with_history(settings)
    with factory() as session:
        later = queries.downsampled_metric_points(session, job_id, 2500, 50, "iteration")
        none = queries.downsampled_metric_points(session, "0" * 32, -1, 50)
    assert later and all(2500 < p.step < N and p.kind == "iteration" for p in later)
    assert later[-1].step == N - 1 and len(later) <= 50
    assert none == []
    assert math.isclose(later[0].values["loss"], 1.0 / (1 + later[0].step))
