"""Uploaded datasets, npz specs over HTTP, model download and predictions."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from dljobs import artifacts, jobstore

API = "/api/v1"


def _upload(client, data: bytes, name="mine"):
    return client.post(f"{API}/datasets",
                       data={"file": (io.BytesIO(data), "mine.npz"), "name": name},
                       content_type="multipart/form-data")


def _images(rng, n=40, classes=3):
    x = rng.normal(size=(n, 1, 6, 6)).astype(np.float32)
    y = np.arange(n) % classes
    return x, y


def test_upload_lists_and_describes_the_dataset(client, npz_bytes):
    x, y = _images(np.random.default_rng(0))
    data = npz_bytes(x=x, y=y)
    resp = _upload(client, data)
    assert resp.status_code == 201, resp.get_json()
    info = resp.get_json()
    assert info["sample_shape"] == [1, 6, 6] and info["num_classes"] == 3
    assert info["n_samples"] == 40 and info["size_bytes"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["name"] == "mine"
    assert client.get(f"{API}/datasets").get_json()["datasets"] == [info]
    assert client.get(f"{API}/datasets/{info['id']}").get_json() == info


def test_raw_body_upload_is_accepted(client, npz_bytes):
    x, y = _images(np.random.default_rng(1))
    resp = client.post(f"{API}/datasets?name=raw", data=npz_bytes(x=x, y=y),
                       content_type="application/octet-stream")
    assert resp.status_code == 201 and resp.get_json()["name"] == "raw"


def test_bad_arrays_name_the_array_in_the_file(client, npz_bytes, problem):
    x, y = _images(np.random.default_rng(2))
    x[0, 0, 0, 0] = np.nan
    problem(_upload(client, npz_bytes(x=x, y=y)), 422, "file.x")
    problem(_upload(client, npz_bytes(x=x[:, 0, 0, 0], y=y[:5])), 422)


def test_upload_without_a_file_is_a_problem(client, problem):
    problem(client.post(f"{API}/datasets", json={"x": 1}), 415, "file")
    problem(client.get(f"{API}/datasets/nope"), 404, "dataset_id")


def _npz_spec(dataset: dict) -> dict:
    return {"dataset": {"type": "npz", **dataset},
            "model": {"layers": [{"type": "flatten"}, {"type": "affine", "units": 3}]},
            "training": {"epochs": 1, "batch_size": 8}}


def test_npz_spec_gets_the_uploaded_shape_and_classes(client, npz_bytes, sent):
    x, y = _images(np.random.default_rng(3))
    dataset_id = _upload(client, npz_bytes(x=x, y=y)).get_json()["id"]
    resp = client.post(f"{API}/jobs", json=_npz_spec({"dataset_id": dataset_id}))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["summary"]["total_params"] == 36 * 3 + 3
    assert len(sent) == 1


def test_npz_spec_refuses_a_path_and_an_unknown_id(client, problem):
    body = problem(client.post(f"{API}/jobs", json=_npz_spec({"path": "/etc/passwd"})), 422,
                   "dataset.path")
    assert "offline" in body["detail"]
    problem(client.post(f"{API}/jobs", json=_npz_spec({"dataset_id": "0" * 32})), 422,
            "dataset.dataset_id")
    problem(client.post(f"{API}/jobs", json=_npz_spec({})), 422, "dataset.dataset_id")


@pytest.fixture
def finished_job(session, mlp_spec):
    """A succeeded job whose stored model is a freshly built (untrained) digits MLP."""
    from dlcore.spec import build, infer, validate

    spec = validate(mlp_spec())
    model = build(spec)
    job = jobstore.create_job(session, spec, infer(spec), "m")
    job.status = "succeeded"
    blob = model.to_bytes()
    artifacts.add_complete_artifact(session, job.id, "model", blob, iteration=0)
    session.commit()
    return job.id, blob


def test_model_download_is_the_stored_npz(client, finished_job):
    job_id, blob = finished_job
    resp = client.get(f"{API}/jobs/{job_id}/model")
    assert resp.status_code == 200 and resp.data == blob
    assert f"{job_id}.npz" in resp.headers["Content-Disposition"]


def test_predictions_equal_the_model_loaded_locally(client, finished_job, npz_bytes):
    from dlcore.loading import load_model

    job_id, blob = finished_job
    model = load_model(io.BytesIO(blob))
    x = np.random.default_rng(4).uniform(0, 16, size=(5, 1, 8, 8))
    answer = client.post(f"{API}/jobs/{job_id}/predict", json={"inputs": x.tolist()}).get_json()
    assert answer["predictions"] == [int(p) for p in model.predict(x)]
    np.testing.assert_allclose(answer["probabilities"], model.predict_proba(x), rtol=1e-6)
    single = client.post(f"{API}/jobs/{job_id}/predict", json={"inputs": x[0].tolist()})
    assert single.get_json()["predictions"] == answer["predictions"][:1]
    upload = client.post(f"{API}/jobs/{job_id}/predict",
                         data={"file": (io.BytesIO(npz_bytes(x=x)), "x.npz")},
                         content_type="multipart/form-data")
    assert upload.get_json()["predictions"] == answer["predictions"]


def test_wrong_predict_shape_names_the_expected_shape(client, finished_job, problem):
    job_id, _ = finished_job
    body = problem(client.post(f"{API}/jobs/{job_id}/predict",
                               json={"inputs": np.zeros((2, 64)).tolist()}), 422, "inputs")
    assert "(N, 1, 8, 8)" in body["detail"] and "(2, 64)" in body["detail"]
    problem(client.post(f"{API}/jobs/{job_id}/predict", json={"inputs": [[1, 2], [3]]}), 422,
            "inputs")
    problem(client.post(f"{API}/jobs/{job_id}/predict", json={"inputs": "abc"}), 422, "inputs")
    problem(client.post(f"{API}/jobs/{job_id}/predict", json={"x": []}), 422, "inputs")
    problem(client.post(f"{API}/jobs/{job_id}/predict", data=b"{",
                        content_type="application/json"), 400, "body")
    nan = np.full((1, 1, 8, 8), np.nan).tolist()
    problem(client.post(f"{API}/jobs/{job_id}/predict", data=str({"inputs": nan})
                        .replace("nan", "NaN").replace("'", '"'),
                        content_type="application/json"), 422, "inputs")


def test_predict_refuses_unreadable_uploads_without_echoing_internals(client, finished_job,
                                                                    npz_bytes, problem):
    job_id, _ = finished_job

    def send(raw: bytes):
        return client.post(f"{API}/jobs/{job_id}/predict",
                           data={"file": (io.BytesIO(raw), "x.npz")},
                           content_type="multipart/form-data")

    body = problem(send(b"hello, not an archive"), 422, "file")
    assert "not an .npz archive" in body["detail"] and "pickle" not in body["detail"]
    broken = bytearray(npz_bytes(x=np.zeros((2, 1, 8, 8))))
    broken[60:120] = b"\xff" * 60  # a damaged member header
    body = problem(send(bytes(broken)), 422, "file")
    assert "not a readable .npz archive" in body["detail"], body
    empty = npz_bytes()
    problem(send(empty), 422, "file")


def test_predict_refuses_a_pickled_npz(client, finished_job, problem):
    job_id, _ = finished_job
    buf = io.BytesIO()
    obj = np.empty(2, dtype=object)
    obj[:] = [{"a": 1}, None]
    np.savez(buf, x=obj)
    resp = client.post(f"{API}/jobs/{job_id}/predict",
                       data={"file": (io.BytesIO(buf.getvalue()), "x.npz")},
                       content_type="multipart/form-data")
    body = problem(resp, 422, "file")
    assert "pickle" in body["detail"]
