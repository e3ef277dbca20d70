"""Checkpoints and models of jobs, stored in the database in chunks: the one home of their bytes.

An artifact may be as large as the limits allow (``DLJOBS_MAX_CHECKPOINT_MB``), more than
one database value holds (PostgreSQL reads back about 512 MiB of one ``bytea`` and stores
at most 1 GiB) and more than a process should hold twice.  So:

- writing (:func:`write_artifact`) inserts the row ``complete=False``, then each chunk of
  :data:`CHUNK_BYTES` in its own short transaction, never inside one that holds the job's
  row: the job's heartbeat keeps beating while a gigabyte is written.  The last step is
  one short transaction guarded by the attempt (the attempt must still hold the job) that
  marks it complete, with its size and sha256, and applies retention: the last
  ``DLJOBS_KEEP_CHECKPOINTS`` checkpoints of the job are kept.  A write refused there, or
  one that fails, removes what it wrote; a writer that crashed leaves an incomplete
  artifact that the job's next attempt removes (:func:`discard_incomplete`).
- reading sees complete artifacts only, one chunk at a time: :func:`iter_chunks` for a
  download, :func:`spooled_copy` for a loader that needs a seekable file (small ones stay
  in memory, large ones go to a temporary file), checked against the stored sha256.

Functions taking a ``factory`` (a ``sessionmaker``) open their own short sessions;
functions taking a ``session`` use it and commit only where they say so.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import IO

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from dljobs.db.models import Artifact, ArtifactChunk, Job, utcnow
from dljobs.lifecycle import LIVE
from dljobs.settings import get_settings

log = logging.getLogger(__name__)

#: Bytes per stored chunk: large enough that a gigabyte is 128 rows, small enough that one
#: chunk in memory (writing or reading) is nothing beside the model it belongs to.
CHUNK_BYTES = 8 * 1024 * 1024

#: Chunks between two looks at whether the writer's attempt still holds the job (128 MiB).
HOLD_CHECK_EVERY = 16

#: A spooled copy stays in memory up to this size, then moves to a temporary file.
SPOOL_IN_MEMORY_BYTES = 32 * 1024 * 1024

CHECKPOINT = "checkpoint"
MODEL = "model"

#: What an artifact is written from: its bytes, a binary file (or its path), or pieces of bytes.
Source = bytes | bytearray | memoryview | IO[bytes] | Path | Iterable[bytes]


class ArtifactCorrupt(Exception):
    """Stored chunks that do not add up to the artifact's size and sha256."""


# ------------------------------------------------------------------------- writing


def write_artifact(
    factory: Callable[[], Session],
    job_id: str,
    attempt: int,
    kind: str,
    iteration: int,
    source: Source,
    *,
    keep_checkpoints: int | None = None,
) -> int | None:
    """Store an artifact of the job in chunks; its id, or None when ``attempt`` no longer holds the job.

    ``keep_checkpoints`` defaults to ``DLJOBS_KEEP_CHECKPOINTS``.  Nothing written by a
    refused or failed write stays behind.
    """
    keep = get_settings().keep_checkpoints if keep_checkpoints is None else int(keep_checkpoints)
    with factory() as session:
        if not _attempt_holds(session, job_id, attempt):
            return None
        row = Artifact(
            job_id=job_id, kind=kind, attempt=attempt, iteration=int(iteration),
            size_bytes=0, complete=False, created_at=utcnow(),
        )
        session.add(row)
        session.commit()
        artifact_id = row.id
    try:
        digest, size = hashlib.sha256(), 0
        for seq, piece in enumerate(_pieces(source)):
            with factory() as session:
                if seq and seq % HOLD_CHECK_EVERY == 0 and not _attempt_holds(session, job_id, attempt):
                    # superseded half-way: stop writing what can never be completed
                    _discard(session, [artifact_id])
                    session.commit()
                    return None
                session.execute(insert(ArtifactChunk).values(artifact_id=artifact_id, seq=seq, data=piece))
                session.commit()
            digest.update(piece)
            size += len(piece)
        with factory() as session:
            if not _complete(session, job_id, attempt, artifact_id, size, digest.hexdigest(), keep):
                session.rollback()
                _discard(session, [artifact_id])
                session.commit()
                return None
            session.commit()
        return artifact_id
    except BaseException:
        # The write failed half-way (database error, shutdown): an incomplete row is never
        # read, but it holds space; remove it if the database still answers.
        try:
            with factory() as session:
                _discard(session, [artifact_id])
                session.commit()
        except Exception:  # noqa: BLE001 - the next attempt's discard_incomplete removes it
            log.warning("artifact %s of job %s: could not remove the incomplete write", artifact_id, job_id)
        raise


def _attempt_holds(session: Session, job_id: str, attempt: int) -> bool:
    """Whether ``attempt`` still holds the live job (a plain read: no lock is taken)."""
    return session.scalar(
        select(Job.id).where(Job.id == job_id, Job.attempt == attempt, Job.status.in_(LIVE))
    ) is not None


def _complete(session: Session, job_id: str, attempt: int, artifact_id: int, size: int, sha256: str, keep: int) -> bool:
    """The last step, one short transaction (not committed): heartbeat guarded by the attempt
    (as every worker write is), the artifact complete, retention and the older attempts' leftovers."""
    held = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status.in_(LIVE))
        .values(heartbeat_at=utcnow())
        .returning(Job.id)
    ).first()
    if held is None:
        return False
    session.execute(
        update(Artifact).where(Artifact.id == artifact_id).values(complete=True, size_bytes=size, sha256=sha256)
    )
    kind = session.scalar(select(Artifact.kind).where(Artifact.id == artifact_id))
    doomed: list[int] = []
    if kind == CHECKPOINT:
        # Only the newest is resumed from; the one before it stays in case the newest is unreadable.
        kept = (
            select(Artifact.id)
            .where(Artifact.job_id == job_id, Artifact.kind == CHECKPOINT, Artifact.complete.is_(True))
            .order_by(Artifact.iteration.desc(), Artifact.id.desc())
            .limit(max(keep, 1))
        )
        doomed += session.scalars(
            select(Artifact.id).where(
                Artifact.job_id == job_id,
                Artifact.kind == CHECKPOINT,
                Artifact.complete.is_(True),
                Artifact.id.not_in(list(session.scalars(kept))),
            )
        )
    doomed += session.scalars(
        select(Artifact.id).where(Artifact.job_id == job_id, Artifact.complete.is_(False), Artifact.attempt < attempt)
    )
    _discard(session, doomed)
    return True


def add_complete_artifact(
    session: Session, job_id: str, kind: str, data: bytes, *, attempt: int = 1, iteration: int = 0
) -> Artifact:
    """Store bytes a caller already holds as one complete artifact, in one transaction (committed).

    No attempt guard and no retention: for fixtures and tools seeding a job's model, not for
    workers (which use :func:`write_artifact`).
    """
    row = Artifact(
        job_id=job_id, kind=kind, attempt=attempt, iteration=int(iteration), size_bytes=len(data),
        complete=True, sha256=hashlib.sha256(data).hexdigest(), created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    for seq, piece in enumerate(_pieces(data)):
        session.execute(insert(ArtifactChunk).values(artifact_id=row.id, seq=seq, data=piece))
    session.commit()
    return row


def discard_incomplete(session: Session, job_id: str, before_attempt: int) -> int:
    """Remove the incomplete artifacts earlier attempts of the job left (crashed writers); committed.

    Only attempts before ``before_attempt``: those have lost the job, so none is still writing.
    """
    ids = list(
        session.scalars(
            select(Artifact.id).where(
                Artifact.job_id == job_id, Artifact.complete.is_(False), Artifact.attempt < before_attempt
            )
        )
    )
    _discard(session, ids)
    session.commit()
    return len(ids)


def delete_job_artifacts(session: Session, job_id: str) -> None:
    """Remove every artifact of a job with its chunks (not committed)."""
    _discard(session, list(session.scalars(select(Artifact.id).where(Artifact.job_id == job_id))))


def _discard(session: Session, artifact_ids: list[int]) -> None:
    """Delete artifacts and their chunks (explicitly: SQLite connections made elsewhere may not
    enforce the foreign key's cascade)."""
    if not artifact_ids:
        return
    session.execute(delete(ArtifactChunk).where(ArtifactChunk.artifact_id.in_(artifact_ids)))
    session.execute(delete(Artifact).where(Artifact.id.in_(artifact_ids)))


def _pieces(source: Source) -> Iterator[bytes]:
    """``source`` as pieces of exactly CHUNK_BYTES (the last one shorter), one in memory at a time."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[start:start + CHUNK_BYTES])
        return
    if isinstance(source, (str, Path)):
        with open(source, "rb") as file:
            yield from _pieces(file)
        return
    if hasattr(source, "read"):
        while piece := source.read(CHUNK_BYTES):
            yield piece
        return
    pending = bytearray()
    for part in source:
        pending += part
        while len(pending) >= CHUNK_BYTES:
            yield bytes(pending[:CHUNK_BYTES])
            del pending[:CHUNK_BYTES]
    if pending:
        yield bytes(pending)


# ------------------------------------------------------------------------- reading


def model_artifact(session: Session, job_id: str) -> Artifact | None:
    """The newest complete final model of a job, if it has one."""
    return session.scalar(
        select(Artifact)
        .where(Artifact.job_id == job_id, Artifact.kind == MODEL, Artifact.complete.is_(True))
        .order_by(Artifact.id.desc())
        .limit(1)
    )


def latest_checkpoint(session: Session, job_id: str) -> Artifact | None:
    """The complete checkpoint of a job a run resumes from (the furthest one)."""
    return session.scalar(
        select(Artifact)
        .where(Artifact.job_id == job_id, Artifact.kind == CHECKPOINT, Artifact.complete.is_(True))
        .order_by(Artifact.iteration.desc(), Artifact.id.desc())
        .limit(1)
    )


def checkpoints(session: Session, job_id: str) -> list[Artifact]:
    """The complete checkpoints of a job, furthest first."""
    return list(
        session.scalars(
            select(Artifact)
            .where(Artifact.job_id == job_id, Artifact.kind == CHECKPOINT, Artifact.complete.is_(True))
            .order_by(Artifact.iteration.desc(), Artifact.id.desc())
        )
    )


def _reading(where: Callable[[], Session] | Session):
    """A session to read with: a new short one from a factory, or the caller's own (left open)."""
    return nullcontext(where) if isinstance(where, Session) else where()


def iter_chunks(where: Callable[[], Session] | Session, artifact: Artifact) -> Iterator[bytes]:
    """The artifact's bytes, one chunk at a time, each read in its own short session
    (``where`` a factory; the API's downloads) or in the caller's session.

    Raises :class:`ArtifactCorrupt` when the chunks end early or run past its size (a
    download then breaks off instead of handing over a shorter file as if whole).
    """
    # Read now, not at the first chunk: a streamed response iterates after its request's
    # session has closed.
    return _chunks(where, artifact.id, int(artifact.size_bytes))


def _chunks(where, artifact_id: int, expected: int) -> Iterator[bytes]:
    seen, seq = 0, 0
    while seen < expected:
        with _reading(where) as session:
            piece = session.scalar(
                select(ArtifactChunk.data).where(ArtifactChunk.artifact_id == artifact_id, ArtifactChunk.seq == seq)
            )
        if piece is None:
            raise ArtifactCorrupt(f"artifact {artifact_id}: chunk {seq} missing after {seen} of {expected} bytes")
        piece = bytes(piece)
        seen += len(piece)
        if seen > expected:
            raise ArtifactCorrupt(f"artifact {artifact_id}: chunks hold more than its {expected} bytes")
        seq += 1
        yield piece


def spooled_copy(where: Callable[[], Session] | Session, artifact: Artifact) -> IO[bytes]:
    """A seekable file (at its start) with the artifact's bytes, checked against its sha256.

    In memory up to :data:`SPOOL_IN_MEMORY_BYTES`, on disk beyond; close it when done.
    """
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES, prefix="dljobs-artifact-")  # noqa: SIM115 - handed to the caller
    try:
        digest = hashlib.sha256()
        for piece in iter_chunks(where, artifact):
            digest.update(piece)
            copy.write(piece)
        if artifact.sha256 and digest.hexdigest() != artifact.sha256:
            raise ArtifactCorrupt(f"artifact {artifact.id}: stored bytes do not match their sha256")
        copy.seek(0)
        return copy
    except BaseException:
        copy.close()
        raise


def read_bytes(where: Callable[[], Session] | Session, artifact: Artifact) -> bytes:
    """The whole artifact as bytes: for small ones only (tests, tools)."""
    with spooled_copy(where, artifact) as copy:
        return copy.read()
