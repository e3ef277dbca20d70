"""Warm start over HTTP names a finished job, never a file on a worker's disk."""

from __future__ import annotations

import io

import numpy as np

from dljobs import artifacts, jobstore
from dljobs.db.migrate import upgrade
from dljobs.db.session import session_factory
from dljobs.runner import run_job
from dljobs.settings import Settings


def test_a_path_is_refused_over_http(client, mlp_spec, problem, sent):
    resp = client.post("/api/v1/jobs", json=mlp_spec(warm_start="/etc/passwd"))
    body = problem(resp, 422, "training.warm_start")
    assert "paths are only accepted offline" in body["errors"][0]["message"]
    assert sent == []  # nothing stored, nothing sent


def test_a_job_without_a_model_is_refused(client, mlp_spec, problem):
    first = client.post("/api/v1/jobs", json=mlp_spec()).get_json()  # queued: no model yet
    resp = client.post("/api/v1/jobs", json=mlp_spec(warm_start=first["id"]))
    problem(resp, 422, "training.warm_start")


def _weights(blob: bytes) -> dict[str, np.ndarray]:
    arrays = np.load(io.BytesIO(blob), allow_pickle=False)
    return {k: arrays[k] for k in arrays.files if k.startswith("param/")}


def test_a_worker_starts_from_the_named_jobs_model(tmp_path, mlp_spec):
    settings = Settings(data_dir=tmp_path, progress_interval_s=0.05)
    upgrade(settings.effective_database_url)
    factory = session_factory(settings)
    with factory() as session:
        first = jobstore.create_job(session, mlp_spec(), {"layers": []}).id
    assert run_job(first, settings, host="h", pid=1) == "succeeded"

    # lr ~ 0: the second run's weights stay where the first run's model left them
    spec = mlp_spec()
    spec["optimizer"] = {"type": "sgd", "lr": 1e-12}
    with factory() as session:  # the warm start is a typed reference of the job (dljobs.specs.JobRefs)
        second = jobstore.create_job(session, spec, {"layers": []}, warm_start_job_id=first).id
        cold = jobstore.create_job(session, spec, {"layers": []}).id
    assert run_job(second, settings, host="h", pid=1) == "succeeded"
    assert run_job(cold, settings, host="h", pid=1) == "succeeded"
    with factory() as session:
        trained, warm, fresh = (_weights(artifacts.read_bytes(session, artifacts.model_artifact(session, job)))
                                for job in (first, second, cold))
    assert trained.keys() == warm.keys()
    for key in trained:
        np.testing.assert_allclose(warm[key], trained[key], atol=1e-6)
    assert any(not np.allclose(fresh[k], trained[k], atol=1e-3) for k in trained)


def test_a_model_an_active_job_starts_from_cannot_be_deleted(client, session, mlp_spec,
                                                            problem):
    from dlcore.spec import build, infer, validate

    spec = validate(mlp_spec())
    source = jobstore.create_job(session, spec, infer(spec), "source")
    source.status = "succeeded"
    blob = build(spec).to_bytes()
    artifacts.add_complete_artifact(session, source.id, "model", blob, iteration=0)
    session.commit()
    warm = client.post("/api/v1/jobs", json=mlp_spec(warm_start=source.id)).get_json()
    # deleting it would fail the queued job (and a running one resumed after a lost worker)
    body = problem(client.delete(f"/api/v1/jobs/{source.id}"), 409, "job_id")
    assert warm["id"] in body["detail"]
    assert client.get(f"/api/v1/jobs/{source.id}/model").status_code == 200
    client.post(f"/api/v1/jobs/{warm['id']}/cancel")
    assert client.delete(f"/api/v1/jobs/{source.id}").status_code == 204
