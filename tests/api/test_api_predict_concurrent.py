"""One cached model serves concurrent predictions with no lock: 8 threads x 50 requests answer
exactly (bit for bit, through JSON) what the same requests answer one by one."""

from __future__ import annotations

import random
import threading

import numpy as np

from api.model_cache import app_model_cache
from dlcore.spec import build, infer, validate
from dljobs import artifacts, jobstore
from dljobs.lifecycle import JobStatus

API = "/api/v1"

#: A conv model with batchnorm and dropout, so the forward pass uses conv2d's scratch buffers.
SPEC = {
    "name": "concurrent",
    "dataset": {"type": "digits"},
    "model": {"layers": [
        {"type": "conv2d", "filters": 6, "size": 3, "pad": "same"}, {"type": "spatial_batchnorm"},
        {"type": "relu"}, {"type": "maxpool", "size": 2}, {"type": "flatten"}, {"type": "dropout", "p": 0.3},
        {"type": "affine", "units": 10},
    ]},
    "training": {"epochs": 1, "seed": 3},
}
THREADS, REQUESTS = 8, 50


def test_one_cached_model_answers_concurrent_predictions_as_it_answers_them_one_by_one(app, session, admin_token):
    spec = validate(SPEC)
    job = jobstore.create_job(session, spec, infer(spec), "concurrent")
    job.status = JobStatus.SUCCEEDED
    blob = build(spec).to_bytes()
    artifacts.add_complete_artifact(session, job.id, "model", blob, iteration=0)
    session.commit()
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 16, size=(int(rng.integers(1, 6)), 1, 8, 8)).round(3).tolist() for _ in range(REQUESTS)]
    url = f"{API}/jobs/{job.id}/predict"

    one_by_one = []
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {admin_token}"
    for x in inputs:
        answer = client.post(url, json={"inputs": x})
        assert answer.status_code == 200, answer.get_json()
        one_by_one.append(answer.get_json())

    answers: dict[tuple[int, int], dict] = {}
    errors: list[Exception] = []
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        own = app.test_client()
        own.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {admin_token}"
        order = list(range(REQUESTS))
        random.Random(t).shuffle(order)
        start.wait()
        try:
            for i in order:
                answers[(t, i)] = own.post(url, json={"inputs": inputs[i]}).get_json()
        except Exception as exc:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert len(answers) == THREADS * REQUESTS
    for (t, i), answer in answers.items():
        assert answer == one_by_one[i], f"thread {t}, request {i} differs from its one-by-one answer"
    with app.app_context():
        assert len(app_model_cache()) == 1, "every request used the one loaded model"
