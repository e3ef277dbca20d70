"""dljobs.queries, the reads the API's views make, and the API's model cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import inspect

from api import create_app
from api.model_cache import ModelCache, app_model_cache
from dljobs import artifacts, jobstore, queries
from dljobs.db.models import MetricPoint
from dljobs.lifecycle import ACTIVE, FINISHED, JobStatus

API = "/api/v1"
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _job(session, status=JobStatus.QUEUED, created_at=BASE, spec=None, name="j", warm_start_job_id=None):
    job = jobstore.create_job(session, {"name": name}, {}, name, warm_start_job_id=warm_start_job_id)
    if spec is not None:  # set afterwards: a spec the API would refuse must still be read
        job.spec = spec
    job.status = status
    job.created_at = created_at
    session.commit()
    return job


# ---------------------------------------------------------------------------- job pages


def test_a_cursor_round_trips_and_anything_else_is_a_value_error():
    cursor = queries.JobCursor(BASE + timedelta(microseconds=7), "abc_DEF-1")
    assert queries.JobCursor.decode(cursor.encode()) == cursor
    assert "=" not in cursor.encode()
    for garbage in ("", "!!!", "bm90IGEgY3Vyc29y", "//8", "MjAyNi0xMy0wMXx4"):
        with pytest.raises(ValueError):
            queries.JobCursor.decode(garbage)


def test_job_pages_partition_the_jobs_newest_first_with_ties_broken_by_id(session):
    jobs = [_job(session, created_at=BASE + timedelta(seconds=i // 3)) for i in range(8)]
    expected = [j.id for j in sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)]
    seen, after = [], None
    while True:
        page = queries.job_page(session, 3, after=after)
        assert len(page.jobs) <= 3
        seen += [j.id for j in page.jobs]
        after = page.next_cursor
        if after is None:
            break
    assert seen == expected


def test_a_page_filters_by_status_and_knows_when_it_is_the_last(session):
    done = {_job(session, JobStatus.SUCCEEDED, BASE + timedelta(seconds=i)).id for i in range(2)}
    _job(session, JobStatus.RUNNING)
    page = queries.job_page(session, 2, [JobStatus.SUCCEEDED])
    assert {j.id for j in page.jobs} == done and page.next_cursor is None
    assert len(queries.job_page(session, 10).jobs) == 3
    assert len(queries.job_page(session, 1).jobs) == 1


def test_job_status_is_the_lifecycle_enum_and_none_once_deleted(session):
    job = _job(session, JobStatus.CANCELLED)
    assert queries.job_status(session, job.id) is JobStatus.CANCELLED
    assert jobstore.delete_job(session, job.id)
    assert queries.job_status(session, job.id) is None
    assert queries.get_job(session, job.id) is None


def test_warm_started_from_names_only_active_jobs_oldest_first(session):
    source = _job(session, JobStatus.SUCCEEDED)
    starting = {}
    for i, status in enumerate([*sorted(ACTIVE), *sorted(FINISHED)]):
        starting[status] = _job(session, status, BASE + timedelta(seconds=10 - i), name=str(status),
                                warm_start_job_id=source.id).id
    _job(session, JobStatus.QUEUED, warm_start_job_id="another")
    # the spec is not where a warm start is read from any more: only the typed column counts
    _job(session, JobStatus.QUEUED, spec={"training": {"warm_start": source.id}})
    got = queries.warm_started_from(session, source.id)
    assert got == [starting[s] for s in sorted(ACTIVE, reverse=True)]


# ---------------------------------------------------------------------------- metric pages


def test_metric_pages_say_where_the_next_starts(session):
    job = _job(session, JobStatus.RUNNING)
    for step in range(1, 6):
        session.add(MetricPoint(job_id=job.id, step=step, kind="iteration", iteration=step,
                                epoch=step / 5, values={"loss": 1.0}))
    session.commit()
    first = queries.metric_page(session, job.id, -1, 3)
    assert [p.step for p in first.points] == [1, 2, 3] and first.has_more
    rest = queries.metric_page(session, job.id, first.next_since, 3)
    assert [p.step for p in rest.points] == [4, 5] and not rest.has_more and rest.next_since == 5
    assert queries.metric_page(session, job.id, 5, 3) == ([], 5, False)
    assert queries.metric_page(session, job.id, -1, 3, "epoch") == ([], None, False)


# ---------------------------------------------------------------------------- datasets


def test_datasets_are_stored_and_listed_newest_first_without_their_blobs(session):
    older = queries.add_dataset(session, b"PK-one", "one", [1, 2], 3, 4, "a" * 64)
    older.created_at = BASE
    session.commit()
    newer = queries.add_dataset(session, b"PK-two!", None, [5], 2, 9, "b" * 64)
    session.expunge_all()
    listed = queries.datasets(session)
    assert [d.id for d in listed] == [newer.id, older.id]
    assert all("blob" in inspect(d).unloaded for d in listed)
    row = queries.get_dataset(session, older.id)
    assert (row.name, row.sample_shape, row.size_bytes, row.blob) == ("one", [1, 2], 6, b"PK-one")
    assert queries.get_dataset(session, "nope") is None


def test_ping_answers_on_a_live_database(session):
    assert queries.ping(session) is None


# ---------------------------------------------------------------------------- the model cache


def test_the_model_cache_keeps_the_most_recently_used_and_forgets_a_job():
    cache = ModelCache(size=2)
    loads = []

    def load(key):
        return lambda: loads.append(key) or key

    for key in [("a", 1), ("b", 1), ("a", 1), ("c", 1), ("b", 1)]:
        assert cache.get(key, load(key)) == key
    assert loads == [("a", 1), ("b", 1), ("c", 1), ("b", 1)]  # b was dropped when c came
    cache.get(("c", 2), load(("c", 2)))
    assert len(cache) == 2
    cache.drop("c")  # (c, 2) goes, b stays
    assert len(cache) == 1
    loaded = len(loads)
    cache.get(("b", 1), load(("b", 1)))
    assert len(loads) == loaded, "b was still cached"
    cache.get(("c", 2), load(("c", 2)))
    assert loads[loaded:] == [("c", 2)]


def test_each_app_has_its_own_model_cache(tmp_path):
    apps = [create_app({"TESTING": True, "DATA_DIR": str(tmp_path)}) for _ in range(2)]
    caches = []
    for app in apps:
        with app.app_context():
            caches.append(app_model_cache())
    assert caches[0] is not caches[1]


def test_deleting_a_job_forgets_its_loaded_model(app, client, session, mlp_spec):
    from dlcore.spec import build, infer, validate

    spec = validate(mlp_spec())
    job = jobstore.create_job(session, spec, infer(spec), "m")
    job.status = JobStatus.SUCCEEDED
    blob = build(spec).to_bytes()
    artifacts.add_complete_artifact(session, job.id, "model", blob, iteration=0)
    session.commit()
    x = np.zeros((2, 1, 8, 8)).tolist()
    assert client.post(f"{API}/jobs/{job.id}/predict", json={"inputs": x}).status_code == 200
    with app.app_context():
        cache = app_model_cache()
    assert len(cache) == 1
    client.post(f"{API}/jobs/{job.id}/predict", json={"inputs": x})
    assert len(cache) == 1, "the second prediction used the loaded model"
    assert client.delete(f"{API}/jobs/{job.id}").status_code == 204
    assert len(cache) == 0


# ---------------------------------------------------------------------------- on both databases


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def db_session(request, tmp_path):
    """A session on a fresh SQLite or PostgreSQL database made by Alembic."""
    from dljobs import testsupport
    from dljobs.db.migrate import upgrade
    from dljobs.db.session import session_factory
    from dljobs.settings import Settings
    from tests.conftest import require_service

    def opened(url: str):
        upgrade(url)
        with session_factory(Settings(data_dir=tmp_path, database_url=url))() as s:
            yield s

    if request.param == "sqlite":
        yield from opened(f"sqlite:///{tmp_path / 'q.sqlite'}")
        return
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        yield from opened(url)


def test_the_name_prefix_is_case_sensitive_and_literal_on_both_databases(db_session):
    names = ["digits-cnn", "Digits-mlp", "digits_a", "digitsXa", "digits%b", "dïgits", "dïg", None]
    for i, name in enumerate(names):
        _job(db_session, created_at=BASE + timedelta(seconds=i), name=name)

    def matching(prefix: str) -> set:
        return {j.name for j in queries.job_page(db_session, 50, name_prefix=prefix).jobs}

    assert matching("digits") == {"digits-cnn", "digits_a", "digitsXa", "digits%b"}
    assert matching("digits_") == {"digits_a"}  # not LIKE's any-one-character
    assert matching("digits%") == {"digits%b"}
    assert matching("Digits") == {"Digits-mlp"}
    assert matching("dïg") == {"dïgits", "dïg"}  # characters, not bytes
    assert matching("digits-cnn-longer") == set()
    assert len(queries.job_page(db_session, 50, name_prefix="").jobs) == len(names)


def test_dataset_lookup_by_sha256_and_the_conditional_delete_on_both_databases(db_session):
    first = queries.add_dataset(db_session, b"PK-one", "one", [4], 2, 10, "c" * 64)
    first.created_at = BASE
    db_session.commit()
    queries.add_dataset(db_session, b"PK-one", "copy", [4], 2, 10, "c" * 64)  # an old duplicate
    assert queries.dataset_with_sha256(db_session, "c" * 64).id == first.id  # the oldest
    assert queries.dataset_with_sha256(db_session, "d" * 64) is None
    job = jobstore.create_job(db_session, {"name": "j"}, {}, "j", dataset_id=first.id)
    for status in sorted(ACTIVE):
        job.status = status
        db_session.commit()
        assert queries.jobs_using_dataset(db_session, first.id) == [job.id]
        assert queries.delete_dataset(db_session, first.id) is False
    job.status = JobStatus.SUCCEEDED
    db_session.commit()
    assert queries.jobs_using_dataset(db_session, first.id) == []
    first_id = first.id
    assert queries.delete_dataset(db_session, first_id) is True
    db_session.expire_all()
    assert queries.get_dataset(db_session, first_id) is None
    assert queries.delete_dataset(db_session, first_id) is False
