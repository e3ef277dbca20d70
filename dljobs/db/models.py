"""The service's tables as SQLAlchemy 2.x typed models.

Alembic (``migrations/``) is the only way these tables are created; a test checks
that the migrations and these models agree.  Times are timezone-aware UTC.
"""

from __future__ import annotations

import math
import numbers
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dljobs.lifecycle import DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, JobStatus, SweepStatus

# Constraint names stable across SQLite and PostgreSQL, so migrations can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """A timestamp that is always returned timezone-aware UTC (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it as a class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        bytes: LargeBinary,
    }


class Job(Base):
    """One training job: its spec, where it is in its life, and what it has reported."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value, index=True)  # a JobStatus
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_ATTEMPTS)
    # Times a worker gave it back on purpose (shutdown): those attempts are not used up.
    handbacks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker_host: Mapped[str | None] = mapped_column(String(255))
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    # The service's references (dljobs.specs.JobRefs), typed columns rather than spec fields:
    dataset_id: Mapped[str | None] = mapped_column(String(32), index=True)  # an uploaded data set
    warm_start_job_id: Mapped[str | None] = mapped_column(String(32), index=True)  # its model starts this run
    # The job this one was rerun from (POST /jobs/<id>/rerun); a plain id: the original may be deleted.
    rerun_of: Mapped[str | None] = mapped_column(String(32), index=True)
    # Why the run ended before its last epoch (a dljobs.lifecycle.StopReason), and the epoch it ended at.
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    stopped_epoch: Mapped[int | None] = mapped_column(Integer)
    # 0 (lowest) to 9: the queue takes higher ones first (dljobs.broker).
    priority: Mapped[int] = mapped_column(Integer, default=DEFAULT_PRIORITY, server_default=str(DEFAULT_PRIORITY))
    # A sweep's trial (dljobs.sweeps): its sweep, its number there, the values it tries, and the
    # epochs after which the sweep's method judges it (None: no question, train the spec's epochs).
    # The sweep this job is a trial of: a plain id, not a foreign key, because adding one to ``jobs`` on
    # SQLite rebuilds the table, and dropping the old one would cascade-delete every job's points and events.
    sweep_id: Mapped[str | None] = mapped_column(String(32), index=True)
    trial_index: Mapped[int | None] = mapped_column(Integer)
    trial_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    budget_epochs: Mapped[int | None] = mapped_column(Integer)

    metric_points: Mapped[list[MetricPoint]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )
    diagnostics: Mapped[list[DiagnosticEvent]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DiagnosticEvent.id",
    )
    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def error(self) -> dict | None:
        if self.error_code is None and self.error_message is None:
            return None
        return {"code": self.error_code, "message": self.error_message}


class MetricPoint(Base):
    """One point of a job's metric history; ``step`` increases per job."""

    __tablename__ = "metric_points"
    __table_args__ = (
        Index("ix_metric_points_job_id_step", "job_id", "step"),
        # covers the chart's downsampling: a bucket's extremes come from the index alone
        Index("ix_metric_points_job_id_kind_step_loss", "job_id", "kind", "step", "loss"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # "iteration" | "epoch"
    iteration: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempt: Mapped[int | None] = mapped_column(Integer)  # the attempt that wrote it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # values["loss"] again as a typed column, filled from ``values`` by every insert: the
    # chart's downsampling ranks a million of them in SQL, and JSON extraction cost a second.
    loss: Mapped[float | None] = mapped_column(Float, default=lambda context: finite_loss(
        context.get_current_parameters().get("values")))

    job: Mapped[Job] = relationship(back_populates="metric_points")


def finite_loss(values: Any) -> float | None:
    """``values["loss"]`` as a float, or None when it is absent, not a number or not finite."""
    loss = values.get("loss") if isinstance(values, dict) else None
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real):  # NumPy scalars are Real too
        return None
    return float(loss) if math.isfinite(loss) else None


class DiagnosticEvent(Base):
    """A babysitting finding attached to a job (catalogue section 9)."""

    __tablename__ = "diagnostic_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    iteration: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="diagnostics")


class JobEvent(Base):
    """The Server-Sent Events log of a job; ``id`` is the SSE event id."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))  # status | progress | metrics | diagnostic
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="events")


class Dataset(Base):
    """An uploaded ``.npz`` dataset, stored in the database so every worker reaches it."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(200))
    sample_shape: Mapped[list[int]] = mapped_column(JSON)
    num_classes: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(255), index=True)  # the uploading token's owner


class Artifact(Base):
    """A checkpoint or a final model (``.npz`` bytes) of a job, stored as numbered chunks.

    ``dljobs.artifacts`` is the only writer and reader: a row is written ``complete=False``,
    its chunks follow (each in its own short transaction), and it becomes complete, with
    its size and sha256, in one last transaction guarded by the job's attempt.  Readers
    see complete artifacts only.
    """

    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_job_id_kind", "job_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "checkpoint" | "model"
    attempt: Mapped[int] = mapped_column(Integer)
    iteration: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="artifacts")


class ApiToken(Base):
    """A bearer token of the API: stored as the SHA-256 of its plain text, shown once when made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner: Mapped[str] = mapped_column(String(255))  # whose jobs and datasets it sees
    admin: Mapped[bool] = mapped_column(Boolean, default=False)  # sees everyone's
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ArtifactChunk(Base):
    """One piece of an artifact's bytes (``dljobs.artifacts.CHUNK_BYTES`` at most)."""

    __tablename__ = "artifact_chunks"

    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class JobLog(Base):
    """One log line a worker wrote while it ran a job (``dljobs.joblogs``); ``id`` orders them."""

    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(16))  # DEBUG | INFO | WARNING | ERROR | CRITICAL
    logger: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)


# Indexes of ``jobs`` that only reads need, declared after the tables (migration 0007):
#: the job list filtered by status, newest first, without a scan past the other statuses;
Index("ix_jobs_status_created_at", Job.status, Job.created_at)
#: the duration histogram of /metrics, read from the index alone, not from every job row.
Index("ix_jobs_status_started_at_finished_at", Job.status, Job.started_at, Job.finished_at)

class Sweep(Base):
    """A hyperparameter search (``dljobs.sweeps``): its request, and its method's state.

    ``state`` is everything the scheduler and the search method know (``{"method": ...,
    "trials": ...}``): the sweep resumes from it after any restart.
    """

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    base: Mapped[dict[str, Any]] = mapped_column(JSON)  # the job spec every trial starts from
    space: Mapped[dict[str, Any]] = mapped_column(JSON)  # {spec path: domain}
    method: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"type": ..., options}
    metric: Mapped[str] = mapped_column(String(32))
    max_concurrent: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=DEFAULT_PRIORITY)
    status: Mapped[str] = mapped_column(String(16), default=SweepStatus.QUEUED.value, index=True)  # a SweepStatus
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
