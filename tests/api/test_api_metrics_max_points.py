"""GET /jobs/<id>/metrics?max_points=N: the whole history downsampled, spikes kept, and
every bad N a 400 naming max_points."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from api.requests import MAX_CHART_POINTS
from dljobs.db.models import MetricPoint
from dljobs.downsample import MIN_POINTS

API = "/api/v1"
N = 6000
SPIKE = 4321


@pytest.fixture
def long_job(client, session, mlp_spec) -> str:
    job_id = client.post(f"{API}/jobs", json=mlp_spec()).get_json()["id"]
    rows = [{"job_id": job_id, "step": i, "kind": "iteration", "iteration": i + 1, "epoch": i / 60,
             "attempt": 1, "values": {"loss": 50.0 if i == SPIKE else 2.0 - i / N, "lr": 0.01}}
            for i in range(N)]
    rows += [{"job_id": job_id, "step": N + e, "kind": "epoch", "iteration": 60 * (e + 1),
              "epoch": float(e + 1), "attempt": 1,
              "values": {"train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.9}} for e in range(5)]
    session.execute(insert(MetricPoint), rows)
    session.commit()
    return job_id


def test_max_points_downsamples_and_keeps_the_spike(client, long_job):
    body = client.get(f"{API}/jobs/{long_job}/metrics?max_points=200").get_json()
    iterations = [p for p in body["points"] if p["kind"] == "iteration"]
    epochs = [p for p in body["points"] if p["kind"] == "epoch"]
    assert len(iterations) <= 200 and len(epochs) == 5
    assert max(p["values"]["loss"] for p in iterations) == 50.0
    assert iterations[0]["step"] == 0 and iterations[-1]["step"] == N - 1
    assert body["has_more"] is False and body["next_since"] == N + 4
    # the same history, one kind, after a step: what a chart asks for as it grows
    later = client.get(f"{API}/jobs/{long_job}/metrics?max_points=10&since=5000&kind=iteration").get_json()
    assert all(5000 < p["step"] < N and p["kind"] == "iteration" for p in later["points"])
    assert len(later["points"]) <= 10


def test_a_short_history_comes_whole(client, long_job):
    body = client.get(f"{API}/jobs/{long_job}/metrics?max_points={MAX_CHART_POINTS}").get_json()
    assert len(body["points"]) == N + 5


@pytest.mark.parametrize("value", ["0", str(MIN_POINTS - 1), str(MAX_CHART_POINTS + 1), "ten", "1e3", "-5"])
def test_a_bad_max_points_is_a_400_naming_it(client, long_job, problem, value):
    problem(client.get(f"{API}/jobs/{long_job}/metrics?max_points={value}"), 400, "max_points")


def test_max_points_with_limit_is_a_400(client, long_job, problem):
    body = problem(client.get(f"{API}/jobs/{long_job}/metrics?max_points=100&limit=10"), 400, "max_points")
    assert "limit" in body["detail"]


def test_max_points_of_another_owners_job_is_404(owner_client, other_owner_client, mlp_spec, problem):
    job_id = owner_client.post(f"{API}/jobs", json=mlp_spec()).get_json()["id"]
    assert owner_client.get(f"{API}/jobs/{job_id}/metrics?max_points=100").get_json()["points"] == []
    problem(other_owner_client.get(f"{API}/jobs/{job_id}/metrics?max_points=100"), 404, "job_id")
