"""Limits of the API: the JSON body limit, per-token submission rate and event streams,
zip bombs refused before they expand, client-given names never reaching the file system."""

from __future__ import annotations

import io
import uuid
import zipfile

import numpy as np
import pytest

from api import create_app
from api.limits import RedisStreamCounter
from dljobs import testsupport
from dljobs.db import migrate
from tests.conftest import require_service

from .conftest import _mlp_spec

MB = 1024 * 1024


class CountingStream:
    """A request body of ``size`` bytes that counts what the app reads of it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.read_bytes
        n = left if n is None or n < 0 else min(n, left)
        self.read_bytes += n
        return b" " * n


def test_a_60_mb_json_body_is_refused_from_its_content_length_without_being_read(client):
    body = CountingStream(60 * MB)
    resp = client.post("/api/v1/jobs", content_type="application/json",
                       environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(60 * MB)})
    assert resp.status_code == 413
    problem = resp.get_json()
    assert str(60 * MB) in problem["detail"] and str(MB) in problem["detail"]
    assert "DLJOBS_MAX_JSON_BYTES" in problem["detail"]
    assert body.read_bytes <= 64 * 1024, f"the app read {body.read_bytes} bytes of a refused body"


def test_a_chunked_json_body_is_refused_once_it_passes_the_limit(limited_app, admin_client_of):
    client = admin_client_of(limited_app)
    body = CountingStream(60 * MB)
    resp = client.post("/api/v1/jobs", content_type="application/json",
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True,
                                          "CONTENT_LENGTH": ""})
    assert resp.status_code == 413
    assert "DLJOBS_MAX_JSON_BYTES" in resp.get_json()["detail"]
    assert body.read_bytes <= MB + 128 * 1024, f"read {body.read_bytes} bytes before refusing"


def test_a_json_body_under_the_limit_is_read(client):
    resp = client.post("/api/v1/jobs", json=_mlp_spec())
    assert resp.status_code == 201, resp.get_json()


@pytest.fixture
def limited_app(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    migrate.upgrade(url)
    from dljobs.settings import Settings

    settings = Settings(database_url=url, data_dir=tmp_path, submit_rate="3/minute",
                        max_streams_per_token=1, max_upload_bytes=2 * MB)
    return create_app({"TESTING": True, "DLJOBS_SETTINGS": settings,
                       "DLJOBS_ENQUEUE": lambda job_id: None,
                       "DLJOBS_BROKER_CHECK": lambda: None, "SSE_POLL_S": 0.01,
                       "RATELIMIT_STORAGE_URI": "memory://"})


def test_submissions_over_the_rate_are_429_with_retry_after_and_the_limit(limited_app, admin_client_of):
    client = admin_client_of(limited_app)
    codes = [client.post("/api/v1/jobs", json=_mlp_spec()).status_code for _ in range(3)]
    assert codes == [201, 201, 201]
    resp = client.post("/api/v1/jobs", json=_mlp_spec())
    assert resp.status_code == 429
    assert resp.mimetype == "application/problem+json"
    assert int(resp.headers["Retry-After"]) >= 1
    assert "3 per 1 minute" in resp.get_json()["detail"]


def test_a_second_event_stream_of_one_token_is_429(limited_app, admin_client_of):
    client = admin_client_of(limited_app)
    job = client.post("/api/v1/jobs", json=_mlp_spec()).get_json()
    first = client.get(f"/api/v1/jobs/{job['id']}/events", buffered=False)
    assert first.status_code == 200
    second = client.get(f"/api/v1/jobs/{job['id']}/events", buffered=False)
    assert second.status_code == 429
    assert second.headers["Retry-After"]
    assert "DLJOBS_MAX_STREAMS_PER_TOKEN" in second.get_json()["detail"]
    first.close()  # the slot comes back when the stream ends
    third = client.get(f"/api/v1/jobs/{job['id']}/events", buffered=False)
    assert third.status_code == 200
    third.close()


def _zip_bomb(expanded: int) -> bytes:
    """An .npz of one member of ``expanded`` zero bytes, deflated (about 1 MB per GiB)."""
    buf = io.BytesIO()
    with (zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
          archive.open("x.npy", "w", force_zip64=True) as member):
        chunk = b"\0" * MB
        for _ in range(expanded // MB):
            member.write(chunk)
    return buf.getvalue()


def test_a_zip_bomb_is_refused_from_its_directory_before_it_expands(limited_app, admin_client_of):
    client = admin_client_of(limited_app)
    bomb = _zip_bomb(1024 * MB)
    assert len(bomb) < 2 * MB
    resp = client.post("/api/v1/datasets", data=bomb,
                       content_type="application/octet-stream")
    assert resp.status_code == 413, resp.get_json()
    detail = resp.get_json()["detail"]
    assert str(1024 * MB) in detail and str(len(bomb)) in detail and "nothing was expanded" in detail


TRAVERSALS = ["../../etc/passwd", "..\\..\\windows", "%2e%2e%2f%2e%2e%2f", "a\x00b", "/etc/passwd"]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_traversal_strings_never_reach_the_file_system(client, tmp_path, name):
    before = sorted(p for p in tmp_path.rglob("*"))
    for path in (f"/api/v1/jobs/{name}", f"/api/v1/datasets/{name}",
                 f"/api/v1/jobs/{name}/model", f"/api/v1/jobs/{name}/events"):
        resp = client.get(path)
        assert resp.status_code in (400, 404), (path, resp.status_code)
    resp = client.post("/api/v1/jobs", json={**_mlp_spec(), "name": name})
    assert resp.status_code in (201, 400, 422), resp.get_json()
    resp = client.post("/api/v1/jobs", json=_mlp_spec(warm_start=name))
    assert resp.status_code in (400, 404, 422), resp.get_json()
    resp = client.post("/api/v1/jobs", json={**_mlp_spec(), "dataset": {"dataset_id": name}})
    assert resp.status_code in (400, 404, 422), resp.get_json()
    after = sorted(p for p in tmp_path.rglob("*"))
    assert [p for p in after if p not in before and "api.sqlite" not in p.name] == []


def _npz_with(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=True)
    return buf.getvalue()


def test_a_multipart_upload_without_the_file_part_is_400_naming_it(client):
    resp = client.post("/api/v1/datasets", data={"name": "x", "other": (io.BytesIO(b"PK"), "a")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    assert [e["field"] for e in resp.get_json()["errors"]] == ["file"]


def test_an_archive_member_that_is_not_an_npy_is_refused(client):
    raw = _npz_with(**{"x.npy": _npy([[1.0, 2.0]]), "../../evil.sh": b"#!/bin/sh\n"})
    resp = client.post("/api/v1/datasets", data=raw, content_type="application/octet-stream")
    assert resp.status_code == 422
    assert "'../../evil.sh' is not an .npy array" in resp.get_json()["detail"]


def test_an_array_of_objects_or_strings_is_refused_from_its_header(client):
    for array in (["a", "b"], [{"a": 1}, None]):
        raw = _npz_with(**{"x.npy": _npy(array), "y.npy": _npy([0, 1])})
        resp = client.post("/api/v1/datasets", data=raw, content_type="application/octet-stream")
        assert resp.status_code == 422, resp.get_json()
        detail = resp.get_json()["detail"]
        assert "only booleans, integers and floats" in detail or "pickled objects" in detail


def test_the_redis_stream_count_is_shared_and_given_back():
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")

    first, second = (RedisStreamCounter("redis://127.0.0.1:6379/15") for _ in range(2))
    key = f"test-{uuid.uuid4().hex}"  # two counters: two API processes on one Redis
    assert first.acquire(key, 2) and second.acquire(key, 2)
    assert not first.acquire(key, 2) and not second.acquire(key, 2)
    first.release(key)
    assert second.acquire(key, 2)
    ttl = second._redis.ttl(second._name(key))
    assert 0 < ttl <= 3600  # a killed process's slots come back by themselves
    first.release(key)
    second.release(key)
    assert second._redis.get(second._name(key)) is None
