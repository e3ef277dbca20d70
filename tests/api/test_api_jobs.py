"""Jobs over HTTP: submit, answer shape, idempotency, list paging, cancel, delete, rerun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dljobs import artifacts, jobstore
from dljobs.db.models import Artifact, ArtifactChunk, DiagnosticEvent, Job, JobEvent, MetricPoint

API = "/api/v1"

JOB_KEYS = {"id", "name", "status", "attempt", "worker", "queue_position", "progress",
            "metrics", "diagnostics", "error", "summary", "spec", "rerun_of", "stop_reason",
            "stopped_epoch", "created_at", "started_at", "finished_at",
            "priority", "sweep_id", "trial_index"}


def _iso_utc(value: str) -> datetime:
    assert value.endswith("Z"), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def stored_job(session, status="queued", name="j", created_at=None, **values) -> Job:
    """A job row arranged directly (no validation), for the read-side tests."""
    job = jobstore.create_job(session, {"name": name, "training": {"epochs": 1}},
                              {"layers": []}, name)
    for key, value in dict(status=status, **values).items():
        setattr(job, key, value)
    if created_at is not None:
        job.created_at = created_at
    session.commit()
    return job


def test_submit_validates_stores_and_sends_the_job(client, mlp_spec, sent):
    resp = client.post(f"{API}/jobs", json=mlp_spec())
    assert resp.status_code == 201, resp.get_json()
    job = resp.get_json()
    assert set(job) == JOB_KEYS
    assert job["status"] == "queued" and job["attempt"] == 1 and job["queue_position"] == 1
    assert job["worker"] is None and job["error"] is None and job["diagnostics"] == []
    assert job["name"] == "digits-mlp"
    assert set(job["progress"]) == {"epoch", "epochs", "iteration", "iterations", "percent",
                                    "eta_s"}
    assert set(job["metrics"]) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert job["summary"]["total_params"] == 64 * 16 + 16 + 16 * 10 + 10
    _iso_utc(job["created_at"])
    assert resp.headers["Location"].endswith(f"/jobs/{job['id']}")
    assert sent == [job["id"]]
    assert client.get(f"{API}/jobs/{job['id']}").get_json() == job


def test_idempotency_key_replays_the_same_job_and_refuses_another_body(client, mlp_spec, sent,
                                                                       problem):
    headers = {"Idempotency-Key": "abc-123"}
    first = client.post(f"{API}/jobs", json=mlp_spec(), headers=headers)
    again = client.post(f"{API}/jobs", json=mlp_spec(), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert sent == [first.get_json()["id"]]
    other = mlp_spec(epochs=2)
    problem(client.post(f"{API}/jobs", json=other, headers=headers), 409, "Idempotency-Key")
    assert len(client.get(f"{API}/jobs").get_json()["jobs"]) == 1


def test_list_is_newest_first_filtered_and_paged_without_gaps(client, session):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for i in range(7):
        status = "succeeded" if i % 2 else "queued"
        ids.append(stored_job(session, status=status, name=f"j{i}",
                              created_at=base + timedelta(seconds=i // 2)).id)
    seen, cursor = [], None
    while True:
        url = f"{API}/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).get_json()
        assert len(page["jobs"]) <= 3
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    created = [client.get(f"{API}/jobs/{i}").get_json()["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)
    done = client.get(f"{API}/jobs?status=succeeded").get_json()["jobs"]
    assert {j["id"] for j in done} == {ids[i] for i in (1, 3, 5)}
    both = client.get(f"{API}/jobs?status=succeeded,queued").get_json()["jobs"]
    assert len(both) == 7


def test_name_filters_by_prefix_case_sensitive_and_pages_within_the_filter(client, session):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    names = ["digits-cnn", "digits-mlp", "Digits-cnn", "spiral", "digits_x", "digits%y",
             "digits-cnn", "dig"]
    ids = {}
    for i, name in enumerate(names):
        ids.setdefault(name, []).append(
            stored_job(session, name=name, created_at=base + timedelta(seconds=i)).id)

    def listed(query: str) -> list[str]:
        resp = client.get(f"{API}/jobs?{query}")
        assert resp.status_code == 200, resp.get_json()
        return [j["name"] for j in resp.get_json()["jobs"]]

    assert listed("name=digits-cnn") == ["digits-cnn", "digits-cnn"]  # an exact name
    assert sorted(listed("name=digits")) == sorted(
        ["digits-cnn", "digits-mlp", "digits_x", "digits%y", "digits-cnn"])
    assert listed("name=Digits") == ["Digits-cnn"]  # case-sensitive, on SQLite too
    assert listed("name=digits_") == ["digits_x"]  # _ and % are letters, not LIKE wildcards
    assert listed("name=digits%25") == ["digits%y"]
    assert listed("name=nothing") == []
    assert len(listed("name=")) == len(names)  # empty: no filter
    assert listed("name=digits&status=queued&limit=200") == listed("name=digits")
    seen, cursor = [], None
    while True:
        page = client.get(f"{API}/jobs", query_string={"name": "digits", "limit": 2,
                                                       **({"cursor": cursor} if cursor else {})})
        page = page.get_json()
        seen += [j["name"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == listed("name=digits")


def test_queue_position_counts_from_the_oldest_queued_job(client, session):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    a = stored_job(session, created_at=base)
    stored_job(session, status="running", created_at=base + timedelta(seconds=1))
    c = stored_job(session, created_at=base + timedelta(seconds=2))
    assert client.get(f"{API}/jobs/{a.id}").get_json()["queue_position"] == 1
    assert client.get(f"{API}/jobs/{c.id}").get_json()["queue_position"] == 2
    listed = {j["id"]: j["queue_position"] for j in client.get(f"{API}/jobs").get_json()["jobs"]}
    assert listed[c.id] == 2 and listed[a.id] == 1 and list(listed.values()).count(None) == 1


def test_answer_reports_worker_progress_metrics_and_error(client, session):
    job = stored_job(session, status="failed", attempt=2, worker_host="box", worker_pid=42,
                     progress={"epoch": 1.5, "epochs": 3, "iteration": 30, "iterations": 60,
                               "percent": 50.0, "eta_s": 12.0},
                     metrics={"train_loss": 0.5, "val_accuracy": 0.75},
                     error_code="nan_loss", error_message="loss became NaN at iteration 37",
                     started_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
                     finished_at=datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC))
    answer = client.get(f"{API}/jobs/{job.id}").get_json()
    assert answer["worker"] == {"host": "box", "pid": 42}
    assert answer["attempt"] == 2 and answer["queue_position"] is None
    assert answer["progress"]["percent"] == 50.0 and answer["progress"]["iterations"] == 60
    assert answer["metrics"] == {"train_loss": 0.5, "train_accuracy": None, "val_loss": None,
                                 "val_accuracy": 0.75}
    assert answer["error"] == {"code": "nan_loss", "message": "loss became NaN at iteration 37"}
    assert _iso_utc(answer["finished_at"]) - _iso_utc(answer["started_at"]) == timedelta(
        seconds=8)


def test_cancel_of_a_queued_job_is_immediate_and_idempotent(client, session):
    job = stored_job(session)
    first = client.post(f"{API}/jobs/{job.id}/cancel")
    assert first.status_code == 200 and first.get_json()["status"] == "cancelled"
    again = client.post(f"{API}/jobs/{job.id}/cancel")
    assert again.status_code == 200 and again.get_json()["status"] == "cancelled"
    assert again.get_json()["finished_at"] == first.get_json()["finished_at"]


def test_cancel_of_a_running_job_asks_it_to_stop(client, session):
    job = stored_job(session, status="running", attempt=1, worker_host="w", worker_pid=1)
    assert client.post(f"{API}/jobs/{job.id}/cancel").get_json()["status"] == "cancelling"
    assert client.post(f"{API}/jobs/{job.id}/cancel").get_json()["status"] == "cancelling"


def test_cancel_of_a_finished_job_leaves_it_as_it_is(client, session):
    job = stored_job(session, status="succeeded")
    assert client.post(f"{API}/jobs/{job.id}/cancel").get_json()["status"] == "succeeded"


def test_delete_removes_a_finished_job_and_refuses_an_active_one(client, session, problem):
    done_id = stored_job(session, status="succeeded").id
    session.add(MetricPoint(job_id=done_id, step=1, kind="epoch", iteration=10, epoch=1.0,
                            values={"train_loss": 1.0}))
    session.add(DiagnosticEvent(job_id=done_id, code="overfitting", severity="warning",
                                iteration=10, epoch=1.0, message="m", data={}))
    for kind in ("checkpoint", "model"):
        artifacts.add_complete_artifact(session, done_id, kind, b"npz", iteration=10)
    session.commit()
    running = stored_job(session, status="running")
    problem(client.delete(f"{API}/jobs/{running.id}"), 409, "job_id")
    assert client.get(f"{API}/jobs/{done_id}/model").status_code == 200
    assert client.delete(f"{API}/jobs/{done_id}").status_code == 204
    problem(client.get(f"{API}/jobs/{done_id}"), 404, "job_id")
    problem(client.get(f"{API}/jobs/{done_id}/model"), 404, "job_id")
    problem(client.delete(f"{API}/jobs/{done_id}"), 404, "job_id")
    session.expire_all()
    for table in (MetricPoint, DiagnosticEvent, Artifact, JobEvent):
        assert session.query(table).filter_by(job_id=done_id).count() == 0, table
    assert session.query(ArtifactChunk).count() == 0  # the artifacts' bytes went with them
    assert session.get(Job, running.id) is not None


def test_rerun_makes_a_new_job_with_the_same_spec_and_says_which_it_repeats(client, mlp_spec,
                                                                              sent, session):
    first = client.post(f"{API}/jobs", json=mlp_spec()).get_json()
    assert first["rerun_of"] is None
    resp = client.post(f"{API}/jobs/{first['id']}/rerun")
    assert resp.status_code == 201
    second = resp.get_json()
    assert second["id"] != first["id"] and second["status"] == "queued"
    assert second["summary"] == first["summary"] and second["spec"] == first["spec"]
    assert second["rerun_of"] == first["id"]
    assert sent == [first["id"], second["id"]]
    assert session.get(Job, second["id"]).rerun_of == first["id"]  # a typed column
    third = client.post(f"{API}/jobs/{second['id']}/rerun").get_json()
    assert third["rerun_of"] == second["id"]  # the job it repeats, not the first of the chain
    listed = {j["id"]: j["rerun_of"] for j in client.get(f"{API}/jobs").get_json()["jobs"]}
    assert listed == {first["id"]: None, second["id"]: first["id"], third["id"]: second["id"]}
    client.post(f"{API}/jobs/{first['id']}/cancel")
    assert client.delete(f"{API}/jobs/{first['id']}").status_code == 204
    assert client.get(f"{API}/jobs/{second['id']}").get_json()["rerun_of"] == first["id"]


def test_the_answers_spec_submits_the_same_job_again(client, mlp_spec, sent):
    """``spec`` is the request as submitted (dljobs.specs.request_of): copy it, POST it back."""
    first = client.post(f"{API}/jobs", json=mlp_spec(max_attempts=2)).get_json()
    spec = first["spec"]
    assert spec["name"] == "digits-mlp" and spec["training"]["max_attempts"] == 2
    assert spec["model"]["layers"][1] == {"type": "affine", "units": 16}
    again = client.post(f"{API}/jobs", json=spec)
    assert again.status_code == 201, again.get_json()
    again = again.get_json()
    assert again["spec"] == spec and again["summary"] == first["summary"]
    assert again["rerun_of"] is None  # submitted anew, not rerun


def test_metrics_are_incremental_and_paged(client, session):
    job = stored_job(session, status="running")
    for step in range(1, 8):
        session.add(MetricPoint(job_id=job.id, step=step,
                                kind="epoch" if step % 3 == 0 else "iteration",
                                iteration=step, epoch=step / 3, values={"loss": 1.0 / step}))
    session.commit()
    got, since = [], None
    while True:
        url = f"{API}/jobs/{job.id}/metrics?limit=3" + (
            f"&since={since}" if since is not None else "")
        page = client.get(url).get_json()
        got += page["points"]
        since = page["next_since"]
        if not page["has_more"]:
            break
    assert [p["step"] for p in got] == list(range(1, 8))
    assert got[1]["values"] == {"loss": 0.5}
    epochs = client.get(f"{API}/jobs/{job.id}/metrics?kind=epoch").get_json()["points"]
    assert [p["step"] for p in epochs] == [3, 6]
    later = client.get(f"{API}/jobs/{job.id}/metrics?since=7").get_json()
    assert later["points"] == [] and later["has_more"] is False and later["next_since"] == 7


@pytest.mark.parametrize("status", ["queued", "running", "failed"])
def test_model_of_an_unfinished_job_is_a_409(client, session, problem, status):
    job = stored_job(session, status=status)
    problem(client.get(f"{API}/jobs/{job.id}/model"), 409, "job_id")
    problem(client.post(f"{API}/jobs/{job.id}/predict", json={"inputs": [[0.0]]}), 409,
            "job_id")


def test_diagnostics_reported_by_the_worker_appear_in_the_answer(client, session):
    job = stored_job(session)
    attempt = jobstore.claim(session, job.id, "w", 7, 30)
    jobstore.report(session, job.id, attempt, diagnostics=[{
        "code": "slow_progress", "severity": "warning", "iteration": 40, "epoch": 1.5,
        "message": "loss barely moves: the learning rate 1e-07 is likely too low",
        "data": {"relative_change": 0.001}}])
    answer = client.get(f"{API}/jobs/{job.id}").get_json()
    assert answer["status"] == "running" and answer["worker"] == {"host": "w", "pid": 7}
    [diag] = answer["diagnostics"]
    assert diag["code"] == "slow_progress" and diag["severity"] == "warning"
    assert diag["iteration"] == 40 and diag["data"] == {"relative_change": 0.001}
    _iso_utc(diag["created_at"])


def test_a_submit_whose_send_fails_is_left_for_the_reconciler(app, client, mlp_spec, session):
    # create_job(sending=True) writes enqueued_at with the row; a failed send takes it back.
    def broken(_job_id):
        raise ConnectionError("broker away")

    app.config["DLJOBS_ENQUEUE"] = broken
    resp = client.post("/api/v1/jobs", json=mlp_spec())
    assert resp.status_code == 201 and resp.get_json()["status"] == "queued"
    assert session.get(Job, resp.get_json()["id"]).enqueued_at is None
