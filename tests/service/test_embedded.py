"""The embedded default end to end: `dljobs up` (SQLite, filesystem broker, gunicorn,
two real Celery worker processes) driven over HTTP only."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import requests
from sklearn.datasets import load_digits

from dljobs.embedded import EmbeddedService
from dljobs.lifecycle import FINISHED

pytestmark = pytest.mark.service

API = "/api/v1"


class _Http:
    """``requests`` with the bearer token of the service a URL names (auth is on by default)."""

    def __init__(self):
        self.tokens: dict[str, str] = {}

    def serve(self, svc: EmbeddedService) -> EmbeddedService:
        """Remember ``svc``'s admin token (``dljobs up`` wrote it to its data directory)."""
        self.tokens[svc.base_url] = svc.token
        return svc

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        token = self.tokens.get(url.split(API, 1)[0])
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs) -> requests.Response:
        return self.request("POST", url, **kwargs)


HTTP = _Http()


def mlp_spec(seed: int = 0, epochs: int = 3, **training) -> dict:
    return {
        "name": f"mlp-{seed}",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed, **training},
    }


def submit(base: str, spec: dict) -> dict:
    response = HTTP.post(f"{base}{API}/jobs", json=spec, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def get(base: str, job_id: str) -> dict:
    response = HTTP.get(f"{base}{API}/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(base: str, job_id: str, statuses, timeout_s: float = 90.0, progress_at_least: float = -1,
             attempt: int = 1) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = get(base, job_id)
        if (job["status"] in statuses and (job["progress"]["percent"] or 0) > progress_at_least
                and job["attempt"] >= attempt):
            return job
        if job["status"] in FINISHED and job["status"] not in statuses:
            raise AssertionError(f"job ended {job['status']}: {job['error']}")
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = EmbeddedService(tmp_path_factory.mktemp("embedded"), workers=2)
    HTTP.serve(svc.start().wait_workers())  # both consume before the tests count who took jobs
    yield svc
    code = svc.stop()
    assert code == 0, svc.log()[-3000:]


def test_jobs_train_on_both_workers_and_models_predict_like_local(service):
    from dlcore.loading import load_model

    base = service.base_url
    jobs = [submit(base, mlp_spec(seed)) for seed in range(4)]
    done = [wait_for(base, job["id"], {"succeeded"}) for job in jobs]
    assert len({(j["worker"]["host"], j["worker"]["pid"]) for j in done}) == 2, "both workers take jobs"
    x = load_digits().images[:6].reshape(6, 1, 8, 8)
    for job in done:
        assert job["attempt"] == 1 and job["progress"]["percent"] == 100.0
        assert 0.8 <= job["metrics"]["val_accuracy"] <= 1.0
        points = HTTP.get(f"{base}{API}/jobs/{job['id']}/metrics", timeout=30).json()["points"]
        assert sum(p["kind"] == "epoch" for p in points) == 3
        blob = HTTP.get(f"{base}{API}/jobs/{job['id']}/model", timeout=30)
        assert blob.status_code == 200
        local = load_model(blob.content)
        answer = HTTP.post(f"{base}{API}/jobs/{job['id']}/predict", json={"inputs": x.tolist()}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == local.predict(x).tolist()


def test_cancel_running_and_queued_jobs_then_the_worker_takes_the_next(service):
    base = service.base_url
    long_jobs = [submit(base, mlp_spec(10 + i, epochs=2000)) for i in range(2)]
    for job in long_jobs:
        wait_for(base, job["id"], {"running"}, progress_at_least=0)
    queued = submit(base, mlp_spec(20))
    assert HTTP.post(f"{base}{API}/jobs/{queued['id']}/cancel", timeout=30).json()["status"] == "cancelled"
    asked = time.monotonic()
    answer = HTTP.post(f"{base}{API}/jobs/{long_jobs[0]['id']}/cancel", timeout=30).json()
    assert answer["status"] in ("cancelling", "cancelled")
    stopped = wait_for(base, long_jobs[0]["id"], {"cancelled"}, timeout_s=20)
    assert time.monotonic() - asked < 5.0
    assert stopped["progress"]["percent"] < 100
    follower = submit(base, mlp_spec(21))
    assert wait_for(base, follower["id"], {"succeeded"})["worker"] == stopped["worker"]
    HTTP.post(f"{base}{API}/jobs/{long_jobs[1]['id']}/cancel", timeout=30)
    wait_for(base, long_jobs[1]["id"], {"cancelled"}, timeout_s=20)
    # The follower was sent after the cancelled job (first in, first out) and has run: the
    # cancelled job's message was delivered, and dropped.
    never_ran = get(base, queued["id"])
    assert never_ran["status"] == "cancelled" and never_ran["started_at"] is None
    assert never_ran["worker"] is None, "a cancelled queued job never runs"


def test_a_job_delivered_twice_trains_once(service):
    from dljobs.broker import TRAIN_TASK, producer
    from dljobs.settings import Settings

    base = service.base_url
    job = submit(base, mlp_spec(30))
    settings = Settings(data_dir=service.data_dir)
    # the same message sent again while the first delivery runs
    producer(settings).send_task(TRAIN_TASK, args=[job["id"]], queue=settings.queue_name)
    done = wait_for(base, job["id"], {"succeeded"})
    # A job sent after the duplicate has run, so the duplicate was delivered (first in, first out).
    assert wait_for(base, submit(base, mlp_spec(31, epochs=1))["id"], {"succeeded"})
    again = get(base, job["id"])
    assert again["attempt"] == 1 and again["status"] == "succeeded"
    assert again["finished_at"] == done["finished_at"]
    points = HTTP.get(f"{base}{API}/jobs/{job['id']}/metrics", timeout=30).json()["points"]
    assert sum(p["kind"] == "epoch" for p in points) == 3


def test_an_uploaded_npz_dataset_trains_on_a_worker(service):
    import io

    base = service.base_url
    digits = load_digits()
    buf = io.BytesIO()
    np.savez(buf, x=digits.data[:600].astype(np.float32), y=digits.target[:600].astype(np.int64))
    upload = HTTP.post(f"{base}{API}/datasets", files={"file": ("digits.npz", buf.getvalue())}, timeout=30)
    assert upload.status_code == 201, upload.text
    spec = mlp_spec(50)
    spec["dataset"] = {"type": "npz", "dataset_id": upload.json()["id"], "preprocess": [{"type": "std"}]}
    job = wait_for(base, submit(base, spec)["id"], {"succeeded"})
    assert job["summary"]["input_shape"] == [64] and job["metrics"]["val_accuracy"] > 0.7


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_stops_everything_and_a_restart_keeps_every_job(tmp_path):
    svc = HTTP.serve(EmbeddedService(tmp_path / "data", workers=1).start())
    base = svc.base_url
    running = submit(base, mlp_spec(40, epochs=2000, checkpoint_every=20))
    wait_for(base, running["id"], {"running"}, progress_at_least=0.2)
    queued = submit(base, mlp_spec(41))
    children = [int(p) for p in os.popen(f"pgrep -P {svc.process.pid}").read().split()]
    assert len(children) == 3  # gunicorn, the front door and one celery worker
    assert svc.stop() == 0
    assert all(_group_gone(pid) for pid in children), "every child stopped with Ctrl-C"

    svc = HTTP.serve(EmbeddedService(tmp_path / "data", workers=1).start())
    base = svc.base_url
    try:
        resumed = wait_for(base, running["id"], {"running"}, attempt=2, timeout_s=30)
        assert resumed["attempt"] == 2
        HTTP.post(f"{base}{API}/jobs/{running['id']}/cancel", timeout=30)
        wait_for(base, running["id"], {"cancelled"}, timeout_s=20)
        assert wait_for(base, queued["id"], {"succeeded"})["attempt"] == 1
    finally:
        assert svc.stop() == 0
