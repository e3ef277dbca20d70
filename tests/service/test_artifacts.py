"""Artifacts in chunks (dljobs.artifacts): round trips, retention, incomplete writes, and the
job's row left alone while one is written, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta

import numpy as np
import psycopg
import pytest
from sqlalchemy import func, select, text, update

from api import create_app
from dljobs import artifacts, jobstore, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.models import Artifact, ArtifactChunk, Job, utcnow
from dljobs.db.session import session_factory
from dljobs.runner import run_job
from dljobs.settings import Settings
from tests.conftest import require_service
from tests.service.test_runner import SPEC, FakeTrainer

MIB = 2**20


@pytest.fixture
def factory(settings):
    return session_factory(settings)


def running_job(factory) -> tuple[str, int]:
    """A job claimed by worker h:1: (its id, the attempt)."""
    with factory() as session:
        job_id = jobstore.create_job(session, SPEC, None).id
        return job_id, jobstore.claim(session, job_id, "h", 1, 60)


def chunk_rows(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(ArtifactChunk))


@pytest.mark.parametrize("form", ["bytes", "file", "pieces"])
def test_an_artifact_of_several_chunks_reads_back_byte_for_byte(factory, form):
    data = os.urandom(3 * artifacts.CHUNK_BYTES + 12345)  # three full chunks and a short one
    source = {"bytes": data, "file": io.BytesIO(data),
              # uneven pieces: the writer cuts them into whole chunks itself
              "pieces": (data[i:i + 3 * MIB + 7] for i in range(0, len(data), 3 * MIB + 7))}[form]
    job_id, attempt = running_job(factory)
    artifact_id = artifacts.write_artifact(factory, job_id, attempt, artifacts.MODEL, 9, source)
    with factory() as session:
        row = artifacts.model_artifact(session, job_id)
        sizes = list(session.scalars(select(func.length(ArtifactChunk.data)).where(
            ArtifactChunk.artifact_id == artifact_id).order_by(ArtifactChunk.seq)))
    assert row.id == artifact_id and row.complete and row.size_bytes == len(data)
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert sizes == [artifacts.CHUNK_BYTES] * 3 + [12345]
    assert b"".join(artifacts.iter_chunks(factory, row)) == data
    with artifacts.spooled_copy(factory, row) as copy:
        assert copy.read() == data


@pytest.mark.parametrize("check_every", [1, 1000])  # seen half-way, or only at the last step
def test_a_write_whose_attempt_is_superseded_half_way_is_refused_and_leaves_nothing(factory, monkeypatch,
                                                                                   check_every):
    monkeypatch.setattr(artifacts, "HOLD_CHECK_EVERY", check_every)
    job_id, attempt = running_job(factory)

    def taken_over_after_the_first_chunk():
        yield b"a" * artifacts.CHUNK_BYTES
        with factory() as session:  # the worker was presumed lost; another one claims the job
            session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
            session.commit()
            assert jobstore.claim(session, job_id, "other", 2, 60) == attempt + 1
        yield b"b" * artifacts.CHUNK_BYTES

    assert artifacts.write_artifact(factory, job_id, attempt, artifacts.CHECKPOINT, 1,
                                    taken_over_after_the_first_chunk()) is None
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Artifact)) == 0
    assert chunk_rows(factory) == 0


def test_retention_keeps_exactly_the_last_k_checkpoints(factory):
    job_id, attempt = running_job(factory)
    for iteration in range(1, 6):
        payload = bytes([iteration]) * (artifacts.CHUNK_BYTES + 1)  # two chunks each
        artifacts.write_artifact(factory, job_id, attempt, artifacts.CHECKPOINT, iteration, payload,
                                 keep_checkpoints=3)
    artifacts.write_artifact(factory, job_id, attempt, artifacts.MODEL, 5, b"model")
    with factory() as session:
        kept = artifacts.checkpoints(session, job_id)
        assert [c.iteration for c in kept] == [5, 4, 3]
        assert artifacts.read_bytes(session, kept[0])[:1] == b"\x05"
        assert artifacts.model_artifact(session, job_id) is not None  # retention is for checkpoints
    assert chunk_rows(factory) == 3 * 2 + 1  # the pruned checkpoints' chunks went with them


def test_an_incomplete_artifact_is_never_resumed_from_nor_downloaded_and_is_cleaned_up(settings, factory):
    job_id, attempt = running_job(factory)
    good = fake_checkpoint(3)
    artifacts.write_artifact(factory, job_id, attempt, artifacts.CHECKPOINT, 3, good)

    class Crash(Exception):
        pass

    def dies_half_way():
        yield fake_checkpoint(6)[: artifacts.CHUNK_BYTES // 2]
        raise Crash  # the writer fails after its first chunk

    with pytest.raises(Crash):
        artifacts.write_artifact(factory, job_id, attempt, artifacts.CHECKPOINT, 6, dies_half_way())
    with factory() as session:  # a failed write removes what it wrote
        assert session.scalar(select(func.count()).select_from(Artifact).where(Artifact.complete.is_(False))) == 0
        # a writer killed half-way (a row and one chunk, never completed) leaves this behind:
        session.add(Artifact(id=999, job_id=job_id, kind=artifacts.CHECKPOINT, attempt=attempt, iteration=9,
                             size_bytes=0, complete=False))
        session.add(Artifact(id=998, job_id=job_id, kind=artifacts.MODEL, attempt=attempt, iteration=9,
                             size_bytes=0, complete=False))
        session.flush()
        session.add_all([ArtifactChunk(artifact_id=a, seq=0, data=b"half") for a in (998, 999)])
        session.commit()
        assert artifacts.latest_checkpoint(session, job_id).iteration == 3
        assert artifacts.model_artifact(session, job_id) is None

    # The next attempt resumes from the complete checkpoint and sweeps the leftovers away.
    with factory() as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        session.commit()
    trainer = FakeTrainer(epochs=2, per_epoch=5, checkpoint_every=100)
    assert run_job(job_id, settings, train=trainer, host="h2", pid=2) == "succeeded"
    assert trainer.calls[0]["resume_iteration"] == 3
    with factory() as session:
        assert session.get(Artifact, 998) is None and session.get(Artifact, 999) is None
        assert session.scalar(select(func.count()).select_from(ArtifactChunk).where(
            ArtifactChunk.artifact_id.in_([998, 999]))) == 0

    # A job whose only model is incomplete has no model to download.
    with factory() as session:
        other = jobstore.create_job(session, SPEC, None)
        other.status = "succeeded"
        session.add(Artifact(job_id=other.id, kind=artifacts.MODEL, attempt=1, iteration=1, size_bytes=4,
                             complete=False))
        session.commit()
        other_id = other.id
    app = create_app({"TESTING": True, "DATABASE_URL": settings.effective_database_url,
                      "DATA_DIR": str(settings.data_path),
                      "DLJOBS_ENQUEUE": lambda job_id: None, "DLJOBS_BROKER_CHECK": lambda: None})
    answer = api_get(app, f"/api/v1/jobs/{other_id}/model")
    assert answer.status_code == 404 and answer.get_json()["errors"][0]["field"] == "job_id"


def api_get(app, path):
    """The one HTTP call of this module, as an admin."""
    return testsupport.admin_test_client(app).get(path)


def fake_checkpoint(iteration: int) -> bytes:
    """A checkpoint the FakeTrainer resumes from (it reads ``iteration``)."""
    buf = io.BytesIO()
    np.savez(buf, iteration=np.asarray(iteration))
    return buf.getvalue()


@pytest.mark.service
def test_a_slow_artifact_write_never_holds_the_job_row_on_postgresql(tmp_path):
    """A heartbeat UPDATE of the job's row, with a 2 s lock_timeout, completes while a chunked
    write is half-way; the same probe times out while a transaction does hold the row (the
    probe can tell)."""
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        upgrade(url)
        factory = session_factory(Settings(data_dir=tmp_path, database_url=url))
        job_id, attempt = running_job(factory)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")

        def heartbeat_probe() -> str:
            with psycopg.connect(dsn, autocommit=True) as probe:
                probe.execute("SET lock_timeout = '2s'")
                try:
                    probe.execute("UPDATE jobs SET heartbeat_at = now() WHERE id = %s", (job_id,))
                except psycopg.errors.LockNotAvailable:
                    return "blocked"
            return "beat"

        seen = []

        def slow_source():
            for i in range(3):
                yield bytes([i]) * artifacts.CHUNK_BYTES
                seen.append(heartbeat_probe())  # the writer waits here, its earlier chunks written

        assert artifacts.write_artifact(factory, job_id, attempt, artifacts.CHECKPOINT, 1, slow_source())
        assert seen == ["beat"] * 3
        with factory() as session:  # the control: a transaction holding the row blocks the probe
            session.execute(text("UPDATE jobs SET progress = NULL WHERE id = :id"), {"id": job_id})
            assert heartbeat_probe() == "blocked"
            session.rollback()
