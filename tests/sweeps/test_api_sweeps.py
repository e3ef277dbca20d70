"""``/api/v1/sweeps`` on an app whose broker is a list: validation, owners, the first trials,
cancel, a trial's rerun.  Real workers run sweeps in test_sweeps_workers.py."""

from __future__ import annotations

import pytest

from dljobs import sweeps
from dljobs.db.models import Job
from dljobs.lifecycle import JobStatus, SweepStatus


def sweep_body(spec, **over):
    body = {"name": "lr", "base": spec(epochs=1), "space": {"optimizer.lr": {"choice": [0.01, 0.1, 0.5]}},
            "method": {"type": "grid"}, "metric": "val_accuracy", "max_concurrent": 2, "priority": 3}
    body.update(over)
    return body


def test_a_grid_sweep_starts_max_concurrent_trials_as_jobs_of_its_owner(owner_client, mlp_spec, sent):
    resp = owner_client.post("/api/v1/sweeps", json=sweep_body(mlp_spec))
    assert resp.status_code == 201, resp.get_json()
    sweep = resp.get_json()
    assert resp.headers["Location"].endswith(f"/api/v1/sweeps/{sweep['id']}")
    assert sweep["status"] == SweepStatus.RUNNING
    assert len(sent) == 2  # max_concurrent
    jobs = [owner_client.get(f"/api/v1/jobs/{job_id}").get_json() for job_id in sent]
    assert [j["sweep_id"] for j in jobs] == [sweep["id"]] * 2
    assert [j["priority"] for j in jobs] == [3, 3]
    assert [j["spec"]["optimizer"]["lr"] for j in jobs] == [0.01, 0.1]
    assert [j["trial_index"] for j in jobs] == [0, 1]
    rows = sweep["leaderboard"]
    assert [r["trial"] for r in rows] == [0, 1]
    assert all(r["reason"] == "queued: no epoch completed yet" for r in rows)
    assert sweep["best_job_id"] is None
    listed = owner_client.get("/api/v1/sweeps").get_json()["sweeps"]
    assert [s["id"] for s in listed] == [sweep["id"]]
    assert listed[0]["method"] == "grid"


@pytest.mark.parametrize(("change", "field"), [
    ({"space": {"optimizer.lr": {"loguniform": [0, 1]}}}, "space.optimizer.lr"),
    ({"space": {"optimiser.lr": {"choice": [1]}}}, "space.optimiser.lr"),
    ({"space": {"model.layers[9].units": {"choice": [1]}}}, "space.model.layers[9].units"),
    ({"space": {"optimizer.lr": {"uniform": [0.1, 1]}}}, "space.optimizer.lr"),  # a grid of a continuous domain
    ({"space": {}}, "space"),
    ({"method": {"type": "bayes"}}, "method.type"),
    ({"method": {"type": "random", "trials": 0}}, "method.trials"),
    ({"method": {"type": "random", "trails": 3}}, "method.trails"),
    ({"method": {"type": "asha", "min_epochs": 5, "max_epochs": 2}}, "method"),
    ({"max_concurrent": 0}, "max_concurrent"),
    ({"max_concurrent": True}, "max_concurrent"),
    ({"priority": "9"}, "priority"),
    ({"method": {"type": "random", "trials": "6"}}, "method.trials"),
    ({"method": {"type": ["grid"]}}, "method.type"),
    ({"method": "grid"}, "method"),
    ({"base": "spec"}, "base"),
    ({"space": {"optimizer.lr": {"choice": "abc"}}}, "space.optimizer.lr"),
    ({"space": {"optimizer.lr": {"uniform": [0, float("inf")]}}}, "body"),
    ({"priority": 10}, "priority"),
    ({"metric": "accuracy"}, "metric"),
    ({"colour": "blue"}, "colour"),
    ({"base": {"optimizer": {"type": "sgd", "lr": -1}}}, None),
])
def test_bad_sweeps_are_422_naming_the_field(client, mlp_spec, problem, change, field, sent):
    body = problem(client.post("/api/v1/sweeps", json=sweep_body(mlp_spec, **change)), 422, field)
    assert body["title"] == "Invalid sweep"
    assert sent == []
    assert client.get("/api/v1/sweeps").get_json()["sweeps"] == []


def test_the_base_spec_errors_are_named_under_base(client, mlp_spec, problem):
    spec = mlp_spec(epochs=1)
    spec["optimizer"]["lr"] = -1.0
    problem(client.post("/api/v1/sweeps", json=sweep_body(mlp_spec, base=spec)), 422, "base.optimizer.lr")


def test_every_trial_of_a_finite_space_is_validated_at_submission(client, mlp_spec, problem):
    body = problem(client.post("/api/v1/sweeps", json=sweep_body(
        mlp_spec, space={"model.layers[1].units": {"choice": [16, 0]}})), 422, "space")
    assert "model.layers[1].units" in body["errors"][0]["message"]


def test_an_invalid_draw_of_a_continuous_space_is_on_the_leaderboard_with_its_reason(client, mlp_spec, sent):
    # units drawn from [-4, 4]: some draws are not a valid layer; those are listed, never run
    body = sweep_body(mlp_spec, space={"optimizer.lr": {"uniform": [0.01, 0.1]},
                                       "training.batch_size": {"int": [-40, 40]}},
                      method={"type": "random", "trials": 6, "seed": 1}, max_concurrent=6)
    sweep = client.post("/api/v1/sweeps", json=body).get_json()
    rows = sweep["leaderboard"]
    assert len(rows) == 6
    invalid = [r for r in rows if r["job_id"] is None]
    assert invalid and all("invalid spec: training.batch_size" in r["reason"] for r in invalid)
    assert all(r["params"]["training.batch_size"] < 1 for r in invalid)
    assert len(sent) == 6 - len(invalid)


def test_another_owner_sees_no_sweep(owner_client, other_owner_client, mlp_spec, problem):
    sweep = owner_client.post("/api/v1/sweeps", json=sweep_body(mlp_spec)).get_json()
    problem(other_owner_client.get(f"/api/v1/sweeps/{sweep['id']}"), 404, "sweep_id")
    problem(other_owner_client.post(f"/api/v1/sweeps/{sweep['id']}/cancel"), 404, "sweep_id")
    assert other_owner_client.get("/api/v1/sweeps").get_json()["sweeps"] == []
    assert owner_client.get(f"/api/v1/sweeps/{sweep['id']}").status_code == 200


def test_sweeps_need_a_token(anon_client, problem):
    problem(anon_client.get("/api/v1/sweeps"), 401, "Authorization")
    problem(anon_client.post("/api/v1/sweeps", json={}), 401, "Authorization")


def test_cancel_stops_every_trial_and_no_more_start(app, client, mlp_spec, sent, session):
    sweep = client.post("/api/v1/sweeps", json=sweep_body(mlp_spec)).get_json()
    resp = client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert resp.status_code == 200
    answer = resp.get_json()
    assert answer["status"] == SweepStatus.CANCELLED
    assert {r["status"] for r in answer["leaderboard"]} == {JobStatus.CANCELLED}
    assert client.post(f"/api/v1/sweeps/{sweep['id']}/cancel").get_json()["status"] == SweepStatus.CANCELLED
    assert not sweeps.advance(app.config["DLJOBS_SETTINGS"], sweep["id"], enqueue=sent.append)
    assert len(sent) == 2


def test_a_rerun_of_a_trial_stays_in_its_sweep(app, client, mlp_spec, sent, session):
    sweep = client.post("/api/v1/sweeps", json=sweep_body(mlp_spec)).get_json()
    first = sent[0]
    client.post(f"/api/v1/jobs/{first}/cancel")
    rerun = client.post(f"/api/v1/jobs/{first}/rerun").get_json()
    assert rerun["sweep_id"] == sweep["id"] and rerun["trial_index"] == 0 and rerun["rerun_of"] == first
    assert rerun["priority"] == 3
    rows = client.get(f"/api/v1/sweeps/{sweep['id']}").get_json()["leaderboard"]
    assert [r["job_id"] for r in rows if r["trial"] == 0] == [rerun["id"]]


def test_job_priority_is_validated_and_answered(client, mlp_spec, problem, sent, session):
    spec = mlp_spec()
    spec["training"]["priority"] = 9
    job = client.post("/api/v1/jobs", json=spec).get_json()
    assert job["priority"] == 9 and job["spec"]["training"]["priority"] == 9
    assert session.get(Job, job["id"]).priority == 9
    assert client.post("/api/v1/jobs", json=mlp_spec()).get_json()["priority"] == 5
    for bad in (10, -1, "9", True, 2.5):
        spec["training"]["priority"] = bad
        problem(client.post("/api/v1/jobs", json=spec), 422, "training.priority")


def test_the_plugins_listing_has_the_search_methods(client):
    rows = {r["name"]: r for r in client.get("/api/v1/plugins").get_json()["search_methods"]}
    assert {"grid", "random", "asha"} <= set(rows)
    assert rows["random"]["params"]["properties"]["trials"]["minimum"] == 1
