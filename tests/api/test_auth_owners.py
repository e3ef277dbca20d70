"""The cross-owner matrix: owner alice's job (finished, with a model and metrics) and dataset;
owner bob hits every rule x method with alice's ids and gets 404 each time (never 403);
an admin gets no 404; references in a spec follow the same rule."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlcore.spec import build, infer, validate
from dljobs import artifacts, jobstore
from dljobs.db.models import Dataset, MetricPoint
from dljobs.lifecycle import JobStatus

API = "/api/v1"

#: Methods Flask answers by itself for any URL (OPTIONS: the Allow list, the same for
#: every id, so it tells nothing about whose a row is).
IMPLICIT = {"OPTIONS"}


@pytest.fixture
def alices(app, session, owner_client, mlp_spec, npz_bytes):
    """``(job_id, dataset_id)`` of owner alice: a succeeded job with a model and metrics, a dataset."""
    upload = owner_client.post(f"{API}/datasets", data=npz_bytes(x=np.zeros((8, 1, 8, 8)),
                                                                  y=np.arange(8) % 2),
                               content_type="application/octet-stream")
    assert upload.status_code == 201, upload.get_json()
    dataset_id = upload.get_json()["id"]
    spec = validate(mlp_spec())
    job = jobstore.create_job(session, spec, infer(spec), "alice-job", owner="alice")
    job.status = JobStatus.SUCCEEDED
    artifacts.add_complete_artifact(session, job.id, artifacts.MODEL, build(spec).to_bytes())
    session.add(MetricPoint(job_id=job.id, step=0, kind="epoch", iteration=1, epoch=1.0,
                            values={"train_loss": 1.0}))
    session.commit()
    assert session.get(Dataset, dataset_id).owner == "alice"
    return job.id, dataset_id


def _id_rules(app):
    """``(rule, method)`` of every rule naming a job or dataset id; DELETEs last."""
    pairs = [(rule, method) for rule in app.url_map.iter_rules()
             if "<job_id>" in rule.rule or "<dataset_id>" in rule.rule
             for method in sorted(rule.methods - IMPLICIT)]
    return sorted(pairs, key=lambda p: (p[1] == "DELETE", p[0].rule, p[1]))


def _url(rule, job_id: str, dataset_id: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: {"job_id": job_id, "dataset_id": dataset_id}[m.group(1)],
                  rule.rule)


def _call(client, method: str, url: str):
    if url.endswith("/predict"):
        return client.open(url, method=method, json={"inputs": np.zeros((1, 1, 8, 8)).tolist()})
    return client.open(url, method=method, buffered=True)


def test_another_owner_gets_404_on_every_rule_and_method(app, alices, other_owner_client, problem):
    job_id, dataset_id = alices
    pairs = _id_rules(app)
    assert len({r.rule for r, _ in pairs}) >= 8  # job, cancel, rerun, events, metrics, model, predict, dataset
    for rule, method in pairs:
        url = _url(rule, job_id, dataset_id)
        resp = _call(other_owner_client, method, url)
        assert resp.status_code == 404, f"{method} {url}: {resp.status_code}"
        if method != "HEAD":
            problem(resp, 404)
    print(f"cross-owner matrix: {len(pairs)} rule x method pairs, each 404")


def test_the_404_of_another_owners_row_is_the_404_of_a_missing_one(alices, other_owner_client):
    job_id, _ = alices
    theirs = other_owner_client.get(f"{API}/jobs/{job_id}").get_json()
    missing = other_owner_client.get(f"{API}/jobs/{'f' * 32}").get_json()
    assert theirs["title"] == missing["title"] and theirs["errors"][0]["field"] == missing["errors"][0]["field"]


def test_an_admin_sees_every_owners_rows(app, alices, client):
    job_id, dataset_id = alices
    for rule, method in _id_rules(app):
        url = _url(rule, job_id, dataset_id)
        resp = _call(client, method, url)
        assert resp.status_code != 404, f"{method} {url}: {resp.get_data(as_text=True)[:300]}"


def test_the_owner_sees_its_own_rows(alices, owner_client):
    job_id, dataset_id = alices
    assert owner_client.get(f"{API}/jobs/{job_id}").status_code == 200
    assert owner_client.get(f"{API}/datasets/{dataset_id}").status_code == 200
    assert owner_client.get(f"{API}/jobs/{job_id}/model").status_code == 200


def test_lists_show_only_your_own_unless_admin(alices, owner_client, other_owner_client, client, mlp_spec):
    job_id, dataset_id = alices
    bobs = other_owner_client.post(f"{API}/jobs", json=mlp_spec()).get_json()["id"]
    assert [j["id"] for j in other_owner_client.get(f"{API}/jobs").get_json()["jobs"]] == [bobs]
    assert other_owner_client.get(f"{API}/datasets").get_json()["datasets"] == []
    assert [j["id"] for j in owner_client.get(f"{API}/jobs").get_json()["jobs"]] == [job_id]
    assert {j["id"] for j in client.get(f"{API}/jobs").get_json()["jobs"]} == {job_id, bobs}
    assert [d["id"] for d in client.get(f"{API}/datasets").get_json()["datasets"]] == [dataset_id]


def test_a_spec_naming_another_owners_dataset_or_warm_start_is_unknown(alices, other_owner_client, mlp_spec,
                                                                      problem):
    job_id, dataset_id = alices
    spec = mlp_spec()
    spec["dataset"] = {"type": "npz", "dataset_id": dataset_id}
    theirs = problem(other_owner_client.post(f"{API}/jobs", json=spec), 422, "dataset.dataset_id")
    spec["dataset"]["dataset_id"] = "e" * 32
    missing = problem(other_owner_client.post(f"{API}/jobs", json=spec), 422, "dataset.dataset_id")
    assert theirs["errors"][0]["message"].replace(dataset_id, "X") == \
        missing["errors"][0]["message"].replace("e" * 32, "X")
    warm = problem(other_owner_client.post(f"{API}/jobs", json=mlp_spec(warm_start=job_id)), 422,
                   "training.warm_start")
    assert "not a job with a trained model" in warm["detail"]


def test_uploading_bytes_another_owner_stored_makes_a_row_of_your_own(alices, other_owner_client, owner_client,
                                                                     npz_bytes):
    _, dataset_id = alices
    again = other_owner_client.post(f"{API}/datasets", data=npz_bytes(x=np.zeros((8, 1, 8, 8)),
                                                                       y=np.arange(8) % 2),
                                    content_type="application/octet-stream")
    assert again.status_code == 201 and again.get_json()["id"] != dataset_id
    same = owner_client.post(f"{API}/datasets", data=npz_bytes(x=np.zeros((8, 1, 8, 8)), y=np.arange(8) % 2),
                             content_type="application/octet-stream")
    assert same.status_code == 200 and same.get_json()["id"] == dataset_id  # alice's own dedup still works


def test_created_jobs_and_reruns_belong_to_the_creator(session, other_owner_client, mlp_spec):
    from dljobs.db.models import Job

    first = other_owner_client.post(f"{API}/jobs", json=mlp_spec()).get_json()["id"]
    rerun = other_owner_client.post(f"{API}/jobs/{first}/rerun").get_json()["id"]
    assert {session.get(Job, first).owner, session.get(Job, rerun).owner} == {"bob"}


def test_another_owners_idempotency_key_never_replays_their_job(owner_client, other_owner_client, mlp_spec,
                                                               problem):
    headers = {"Idempotency-Key": "shared-key"}
    first = owner_client.post(f"{API}/jobs", json=mlp_spec(), headers=headers)
    assert first.status_code == 201
    body = problem(other_owner_client.post(f"{API}/jobs", json=mlp_spec(), headers=headers), 409,
                   "Idempotency-Key")
    assert first.get_json()["id"] not in str(body)
    again = owner_client.post(f"{API}/jobs", json=mlp_spec(), headers=headers)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
