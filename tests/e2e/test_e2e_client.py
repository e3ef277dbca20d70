"""The Python client against the API under gunicorn, and every error path over real HTTP.

No worker runs here: jobs stay queued unless the test moves them the way a worker
does (``dljobs.jobstore``), so each client call is checked against a known state.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from dljobs import jobstore
from dljobs.client import ApiError, JobTimeout

pytestmark = pytest.mark.service


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_client_covers_the_api(api_only, make_spec):
    client = api_only.client()
    assert client.healthy() and client.ready()["status"] == "ready"
    assert client.openapi()["openapi"].startswith("3.1")
    assert client.plugins()
    first = client.submit(make_spec("one"), idempotency_key="k1")
    assert client.submit(make_spec("one"), idempotency_key="k1")["id"] == first["id"]
    second = client.rerun(first["id"])
    assert second["id"] != first["id"]
    assert [j["id"] for j in client.iter_jobs(page_size=1)] == [second["id"], first["id"]]
    assert client.list(status="queued")["jobs"][0]["queue_position"] == 2

    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    info = client.upload_dataset(_npz(x=x, y=np.arange(30) % 3), name="vectors")
    assert info["sample_shape"] == [4] and client.datasets() == [info]

    progress_seen = []
    with api_only.session() as session:
        attempt = jobstore.claim(session, first["id"], "sim", os.getpid(), 30)
        jobstore.report(session, first["id"], attempt,
                        progress={"iteration": 3, "iterations": 6, "epoch": 0.5, "epochs": 1,
                                  "percent": 50.0, "eta_s": 1.0},
                        points=[{"kind": "iteration", "iteration": i, "epoch": i / 6,
                                 "values": {"loss": 1.0}} for i in (1, 2, 3)])
    with pytest.raises(JobTimeout) as waited:
        client.wait(first["id"], timeout=0.3, poll_s=0.1, on_progress=progress_seen.append)
    assert waited.value.job["status"] == "running"
    assert progress_seen[0]["progress"]["percent"] == 50.0
    assert [p["step"] for p in client.metrics(first["id"], page_size=2)] == [0, 1, 2]
    assert [p["step"] for p in client.metrics(first["id"], since=0)] == [1, 2]

    assert client.cancel(first["id"])["status"] == "cancelling"
    with api_only.session() as session:
        jobstore.finish(session, first["id"], attempt, "cancelled")
    events = list(client.events(first["id"]))
    assert [e["data"]["status"] for e in events if e["event"] == "status"] == [
        "queued", "running", "cancelling", "cancelled"]
    resumed = list(client.events(first["id"], last_event_id=events[1]["id"]))
    assert resumed == events[2:]
    assert client.wait(first["id"], timeout=5)["status"] == "cancelled"
    client.delete(first["id"])
    with pytest.raises(ApiError) as gone:
        client.get(first["id"])
    assert gone.value.status == 404 and gone.value.fields == ["job_id"]


def _problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and "Traceback" not in resp.text
    return body


def test_every_error_path_is_a_problem_over_http(api_only, make_spec):
    from tests.e2e.conftest import MAX_UPLOAD

    api = api_only.base_url + "/api/v1"
    body = _problem(api_only.http.post(f"{api}/jobs", data=b'{"x": ', timeout=10,
                                  headers={"Content-Type": "application/json"}), 400)
    assert body["errors"][0]["field"] == "body"

    spec = make_spec("bad")
    spec["model"]["layers"][1]["type"] = "no_such_layer"
    body = _problem(api_only.http.post(f"{api}/jobs", json=spec, timeout=10), 422)
    assert "model.layers[1].type" in [e["field"] for e in body["errors"]]

    spec = make_spec("bad")
    spec["training"]["batch_size"] = 0
    body = _problem(api_only.http.post(f"{api}/jobs", json=spec, timeout=10), 422)
    assert "training.batch_size" in [e["field"] for e in body["errors"]]

    spec = make_spec("bad")
    spec["model"]["layers"][0] = {"type": "conv2d", "filters": 2, "size": 3, "stride": 2}
    body = _problem(api_only.http.post(f"{api}/jobs", json=spec, timeout=10), 422)
    assert any(e["field"].startswith("model.layers[0]") for e in body["errors"]), body

    _problem(api_only.http.get(f"{api}/jobs/{'0' * 32}", timeout=10), 404)

    big = np.zeros((MAX_UPLOAD // 8 + 100, 1))
    body = _problem(api_only.http.post(f"{api}/datasets", timeout=30,
                                  files={"file": ("big.npz", _npz(x=big, y=np.zeros(len(big),
                                                                                    int)))}), 413)
    assert str(MAX_UPLOAD) in body["detail"]

    pickled = np.empty(3, dtype=object)
    pickled[:] = [{"a": 1}, None, "x"]
    body = _problem(api_only.http.post(f"{api}/datasets", timeout=10,
                                  files={"file": ("p.npz", _npz(x=pickled, y=np.arange(3)))}),
                    422)
    assert body["errors"][0]["field"].startswith("file")
