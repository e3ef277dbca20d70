"""Datasets over HTTP: an identical upload answers the stored one, deletion, files that are not .npz."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from api.uploads import not_npz_reason
from dljobs.db.models import Dataset, Job

API = "/api/v1"


@pytest.fixture
def vectors(npz_bytes):
    """The bytes of a small valid dataset: 20 vectors of 4 numbers, 2 classes."""
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    return npz_bytes(x=x, y=np.arange(20) % 2)


def _upload(client, raw: bytes, name: str | None = None, filename: str = "d.npz"):
    form = {"file": (io.BytesIO(raw), filename), **({"name": name} if name else {})}
    return client.post(f"{API}/datasets", data=form, content_type="multipart/form-data")


def _job_on(client, dataset_id: str) -> dict:
    spec = {"dataset": {"type": "npz", "dataset_id": dataset_id},
            "model": {"layers": [{"type": "affine", "units": 2}]},
            "training": {"epochs": 1, "batch_size": 4}}
    resp = client.post(f"{API}/jobs", json=spec)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


# ---------------------------------------------------------------------------- identical uploads


def test_the_same_bytes_uploaded_again_answer_the_stored_dataset(client, session, vectors,
                                                                 npz_bytes):
    first = _upload(client, vectors, name="first")
    assert first.status_code == 201
    again = _upload(client, vectors, name="second", filename="other.npz")
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()  # its id, and the name it was stored with
    assert again.headers["Location"].endswith(f"/datasets/{first.get_json()['id']}")
    raw = client.post(f"{API}/datasets", data=vectors, content_type="application/octet-stream")
    assert raw.status_code == 200 and raw.get_json()["id"] == first.get_json()["id"]
    assert session.query(Dataset).count() == 1
    other = npz_bytes(x=np.ones((20, 4), np.float32), y=np.arange(20) % 2)
    assert _upload(client, other).status_code == 201  # other bytes: a dataset of its own
    assert len(client.get(f"{API}/datasets").get_json()["datasets"]) == 2


def test_after_a_deletion_the_same_bytes_make_a_new_dataset(client, vectors):
    first = _upload(client, vectors).get_json()
    assert client.delete(f"{API}/datasets/{first['id']}").status_code == 204
    again = _upload(client, vectors)
    assert again.status_code == 201 and again.get_json()["id"] != first["id"]


# ---------------------------------------------------------------------------- deletion


def test_delete_removes_the_dataset_and_an_unknown_id_is_404(client, vectors, problem):
    dataset_id = _upload(client, vectors).get_json()["id"]
    resp = client.delete(f"{API}/datasets/{dataset_id}")
    assert resp.status_code == 204 and resp.get_data() == b""
    problem(client.get(f"{API}/datasets/{dataset_id}"), 404, "dataset_id")
    problem(client.delete(f"{API}/datasets/{dataset_id}"), 404, "dataset_id")
    problem(client.delete(f"{API}/datasets/{'f' * 32}"), 404, "dataset_id")
    problem(client.delete(f"{API}/datasets/not%20an%20id"), 404, "dataset_id")
    assert client.get(f"{API}/datasets").get_json()["datasets"] == []


@pytest.mark.parametrize("status", ["queued", "running", "cancelling"])
def test_a_dataset_an_active_job_trains_on_is_409_naming_the_job(client, session, vectors,
                                                                 problem, status):
    dataset_id = _upload(client, vectors).get_json()["id"]
    job = _job_on(client, dataset_id)
    other = _job_on(client, dataset_id)
    for job_id in (job["id"], other["id"]):
        session.get(Job, job_id).status = status  # as the worker and a cancel would leave it
    session.commit()
    body = problem(client.delete(f"{API}/datasets/{dataset_id}"), 409, "dataset_id")
    assert job["id"] in body["detail"] and other["id"] in body["detail"]
    assert client.get(f"{API}/datasets/{dataset_id}").status_code == 200  # still there


def test_a_dataset_of_finished_jobs_only_can_be_deleted_and_their_rerun_says_so(
        client, session, vectors, problem):
    dataset_id = _upload(client, vectors).get_json()["id"]
    job = _job_on(client, dataset_id)
    assert client.post(f"{API}/jobs/{job['id']}/cancel").get_json()["status"] == "cancelled"
    assert client.delete(f"{API}/datasets/{dataset_id}").status_code == 204
    answer = client.get(f"{API}/jobs/{job['id']}").get_json()
    assert answer["spec"]["dataset"]["dataset_id"] == dataset_id  # what it trained on
    body = problem(client.post(f"{API}/jobs/{job['id']}/rerun"), 422, "dataset.dataset_id")
    assert dataset_id in body["detail"]


def test_the_delete_refuses_a_job_that_became_active_after_the_check(session, vectors, client):
    """The check and the delete are one statement: a job queued in between keeps its data."""
    from dljobs import queries

    dataset_id = _upload(client, vectors).get_json()["id"]
    job = _job_on(client, dataset_id)
    assert queries.delete_dataset(session, dataset_id) is False  # the job is queued
    assert session.get(Dataset, dataset_id) is not None
    client.post(f"{API}/jobs/{job['id']}/cancel")
    session.expire_all()
    assert queries.delete_dataset(session, dataset_id) is True
    assert queries.delete_dataset(session, dataset_id) is False  # gone already


# ---------------------------------------------------------------------------- not an npz


@pytest.mark.parametrize(("raw", "says"), [
    (b"x,y\n0.5,1\n0.25,0\n", "a text file, not an .npz archive"),
    ("héllo wörld, ünïcode text\n".encode() * 300, "a text file, not an .npz archive"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
     "a single .npy array, not an .npz archive"),
    (pickle.dumps({"x": [1, 2]}, protocol=4), "a Python pickle, not an .npz archive"),
    (bytes(range(256)) * 4, "not an .npz archive (a zip of .npy arrays)"),
])
def test_a_file_that_is_not_an_npz_is_named_for_what_it_is(client, problem, raw, says):
    body = problem(_upload(client, raw), 422, "file")
    assert says in body["detail"], body["detail"]
    assert "numpy.savez(file, x=x, y=y)" in body["detail"]
    if "pickle" not in says:
        assert "pickle" not in body["detail"].lower()
    body = problem(client.post(f"{API}/datasets", data=raw,
                               content_type="application/octet-stream"), 422, "body")
    assert says in body["detail"]


def test_text_cut_in_the_middle_of_a_character_is_still_text():
    raw = ("a" * 4095 + "é" + "tail").encode()  # é's two bytes straddle the 4096-byte head
    assert not_npz_reason(raw).startswith("a text file")
    assert not_npz_reason(b"PK\x03\x04anything") is None
    assert not_npz_reason(b"PK\x05\x06" + b"\0" * 18) is None  # an empty zip: the loader judges it
