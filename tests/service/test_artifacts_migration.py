"""Migration 0006 moves stored artifacts' bytes into chunks (complete, with their sha256) and back."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import text

from dljobs import artifacts, testsupport
from dljobs.db.migrate import downgrade, upgrade
from dljobs.db.session import make_engine, session_factory
from dljobs.settings import Settings
from tests.conftest import require_service


def _check_blobs_move_into_chunks_and_back(url: str, tmp_path) -> None:
    upgrade(url, "0005")
    big = os.urandom(2 * artifacts.CHUNK_BYTES + 99)  # two full chunks and a short one
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO jobs (id, spec, status, attempt, max_attempts, created_at) "
                     "VALUES ('j1', '{}', 'succeeded', 1, 3, CURRENT_TIMESTAMP)"))
            for artifact_id, kind, blob in ((1, "checkpoint", big), (2, "model", b"small model"), (3, "model", b"")):
                connection.execute(
                    text("INSERT INTO artifacts (id, job_id, kind, attempt, iteration, blob, size_bytes, created_at) "
                         "VALUES (:id, 'j1', :kind, 1, 5, :blob, :size, CURRENT_TIMESTAMP)"),
                    {"id": artifact_id, "kind": kind, "blob": blob, "size": len(blob)})
        upgrade(url)
        with session_factory(Settings(data_dir=tmp_path, database_url=url))() as session:
            checkpoint = artifacts.latest_checkpoint(session, "j1")
            assert checkpoint.complete and checkpoint.size_bytes == len(big)
            assert checkpoint.sha256 == hashlib.sha256(big).hexdigest()
            assert artifacts.read_bytes(session, checkpoint) == big
            assert artifacts.read_bytes(session, artifacts.model_artifact(session, "j1")) == b""
            chunks = session.execute(text("SELECT artifact_id, count(*) FROM artifact_chunks "
                                          "GROUP BY artifact_id ORDER BY artifact_id")).all()
            assert [tuple(row) for row in chunks] == [(1, 3), (2, 1)]  # an empty one has none
        downgrade(url, "0005")
        with engine.connect() as connection:
            back = dict(connection.execute(text("SELECT id, blob FROM artifacts")).all())
        assert {k: bytes(v) for k, v in back.items()} == {1: big, 2: b"small model", 3: b""}
    finally:
        engine.dispose()


def test_blobs_move_into_chunks_and_back_on_sqlite(tmp_path):
    _check_blobs_move_into_chunks_and_back(f"sqlite:///{tmp_path / 'a.sqlite'}", tmp_path)


@pytest.mark.service
def test_blobs_move_into_chunks_and_back_on_postgresql(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        _check_blobs_move_into_chunks_and_back(url, tmp_path)
