"""dljobs.client against a real HTTP server: streams cut short, ragged predict inputs, the
name filter, reruns and datasets."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from api import create_app
from dljobs import artifacts, jobstore
from dljobs.client import ApiError, Client
from dljobs.db import migrate


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(base URL, app) of the API served over HTTP; streams end after 0.3 s unfinished.

    ``Client`` finds an admin token in ``DLJOBS_TOKEN``.
    """
    url = f"sqlite:///{tmp_path / 'client.sqlite'}"
    migrate.upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                      "DLJOBS_ENQUEUE": lambda job_id: None, "SSE_POLL_S": 0.02,
                      "SSE_MAX_S": 0.3})
    from api.context import session_factory
    from dljobs.tokens import create_token

    with app.app_context(), session_factory()() as session:
        monkeypatch.setenv("DLJOBS_TOKEN", create_token(session, "served-admin", admin=True))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(5)


def test_events_reconnect_when_a_stream_is_cut_before_the_job_ends(served, mlp_spec):
    base, app = served
    client = Client(base, timeout=10)
    job_id = client.submit(mlp_spec())["id"]
    from api.context import session_factory

    with app.app_context():
        factory = session_factory()
    with factory() as session:
        attempt = jobstore.claim(session, job_id, "h", 1, 60)
    received = []
    reader = threading.Thread(target=lambda: received.extend(client.events(job_id)))
    reader.start()
    reader.join(1.0)  # several 0.3 s streams have ended by now, the job still running
    assert reader.is_alive(), "events() returned while the job was still running"
    with factory() as session:
        jobstore.finish(session, job_id, attempt, "succeeded")
    reader.join(10)
    assert not reader.is_alive()
    statuses = [e["data"]["status"] for e in received if e["event"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    ids = [e["id"] for e in received]
    assert ids == sorted(set(ids))  # no event lost or repeated across the reconnections


def test_predict_with_ragged_inputs_is_the_servers_answer(served, mlp_spec):
    from api.context import session_factory
    from dlcore.spec import build, infer, validate

    base, app = served
    with app.app_context():
        factory = session_factory()
    spec = validate(mlp_spec())
    with factory() as session:
        job = jobstore.create_job(session, spec, infer(spec), "m")
        job.status = "succeeded"
        blob = build(spec).to_bytes()
        artifacts.add_complete_artifact(session, job.id, "model", blob, iteration=0)
        session.commit()
        job_id = job.id
    with pytest.raises(ApiError) as caught:  # not numpy's ValueError before sending
        Client(base, timeout=10).predict(job_id, [[1, 2], [3]])
    assert caught.value.status == 422 and caught.value.fields == ["inputs"]


def test_open_streams_never_take_every_thread(tmp_path, mlp_spec, problem, admin_client_of):
    """Past SSE_MAX_STREAMS a stream is a 503 with Retry-After; a closed one frees its slot."""
    url = f"sqlite:///{tmp_path / 'slots.sqlite'}"
    migrate.upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                      "DLJOBS_ENQUEUE": lambda job_id: None, "SSE_MAX_STREAMS": 2,
                      "SSE_POLL_S": 0.01})
    client = admin_client_of(app)
    job_id = client.post("/api/v1/jobs", json=mlp_spec()).get_json()["id"]
    events = f"/api/v1/jobs/{job_id}/events"
    first, second = (client.get(events, buffered=False) for _ in range(2))
    assert first.status_code == second.status_code == 200
    refused = client.get(events, buffered=False)
    assert refused.status_code == 503  # before reading: a stream's body never ends
    problem(refused, 503, "path")
    assert refused.headers["Retry-After"] == "2"
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200  # the rest still answers
    first.close()
    third = client.get(events, buffered=False)
    assert third.status_code == 200
    for resp in (second, third):
        resp.close()
    # a finished job's stream ends by itself and frees its slot as well
    client.post(f"/api/v1/jobs/{job_id}/cancel")
    for _ in range(3):
        ended = client.get(events, buffered=True)  # read to the end, then closed
        assert ended.get_data(as_text=True).endswith(": end of stream\n\n")


def test_client_filters_by_name_reruns_and_manages_datasets(served, mlp_spec, npz_bytes):
    import numpy as np

    base, _ = served
    client = Client(base, timeout=10)
    spec = mlp_spec()
    first = client.submit({**spec, "name": "sweep-a"})
    client.submit({**spec, "name": "other"})
    rerun = client.rerun(first["id"])
    assert rerun["rerun_of"] == first["id"] and rerun["spec"] == first["spec"]
    assert [j["id"] for j in client.iter_jobs(name="sweep", page_size=1)] == [rerun["id"],
                                                                             first["id"]]
    assert client.list(name="other")["jobs"][0]["rerun_of"] is None
    copied = client.submit(first["spec"])  # the answer's spec submits the same job
    assert copied["summary"] == first["summary"]

    data = npz_bytes(x=np.zeros((10, 4), np.float32) + np.arange(10)[:, None], y=np.arange(10) % 2)
    stored = client.upload_dataset(data, name="v")
    assert client.upload_dataset(data, name="again") == stored
    job = client.submit({"dataset": {"type": "npz", "dataset_id": stored["id"]},
                         "model": {"layers": [{"type": "affine", "units": 2}]},
                         "training": {"epochs": 1, "batch_size": 4}})
    with pytest.raises(ApiError) as refused:
        client.delete_dataset(stored["id"])
    assert refused.value.status == 409 and job["id"] in refused.value.detail
    client.cancel(job["id"])
    client.delete_dataset(stored["id"])
    with pytest.raises(ApiError) as gone:
        client.dataset(stored["id"])
    assert gone.value.status == 404 and gone.value.fields == ["dataset_id"]
    with pytest.raises(ApiError) as typo:
        client._request("GET", "/jobs", params={"nme": "sweep"})
    assert typo.value.status == 400 and typo.value.fields == ["nme"]
