"""The answers of the API: pydantic models that both shape the JSON and document it.

Each answer is declared once here; ``api.openapi`` exports the same classes as
JSON Schema, so the document and the answers cannot drift apart.  Times are
ISO-8601 UTC (``2026-11-28T04:05:06.123456Z``); accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dljobs import sweeps
from dljobs.lifecycle import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    STATUSES,
    SWEEP_STATUSES,
    JobStatus,
    StopReason,
)
from dljobs.specs import request_of
from dljobs.sweeps_request import SweepRequest

#: The value of a job's ``status`` (``dljobs.lifecycle`` declares them, in lifecycle order).
StatusValue = Literal[tuple(status.value for status in STATUSES)]
StopReasonName = Literal[tuple(reason.value for reason in StopReason)]
#: The value of a sweep's ``status``.
SweepStatusValue = Literal[tuple(status.value for status in SWEEP_STATUSES)]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Worker(Answer):
    """The worker process that holds (or last held) the job."""

    host: str
    pid: int | None = None


class Progress(Answer):
    """How far training is; every field is null until the worker reports."""

    epoch: float | None = Field(None, description="epochs done, fractional")
    epochs: int | None = Field(None, description="epochs planned")
    iteration: int | None = Field(None, description="optimizer steps done")
    iterations: int | None = Field(None, description="optimizer steps planned")
    percent: float = Field(0.0, ge=0, le=100, description="0-100")
    eta_s: float | None = Field(None, description="estimated seconds left")


class Metrics(Answer):
    """The latest metrics; accuracies are fractions in [0, 1]."""

    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None


class Diagnostic(Answer):
    """A babysitting finding (``nan_loss``, ``slow_progress``, ``overfitting``...)."""

    code: str
    severity: str
    iteration: int | None = None
    epoch: float | None = None
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None


class JobErrorInfo(Answer):
    code: str
    message: str


class Job(Answer):
    """One training job."""

    id: str
    name: str | None = None
    status: StatusValue
    attempt: int = Field(1, ge=1, description="from 1; grows when a lost worker's job is retried")
    worker: Worker | None = None
    queue_position: int | None = Field(None, description="1 = next to run; null unless queued")
    progress: Progress
    metrics: Metrics
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    error: JobErrorInfo | None = None
    summary: dict[str, Any] | None = Field(None, description="the inferred model table")
    spec: dict[str, Any] = Field(
        description="the request that submits this job again: POST it to /jobs as it is "
                    "(the spec with its dataset_id, warm_start and max_attempts)")
    rerun_of: str | None = Field(
        None, description="the id of the job this one was rerun from (POST /jobs/{id}/rerun); "
                          "that job may since have been deleted")
    stop_reason: StopReasonName | None = Field(
        None, description="why the run ended before its last epoch (early_stopping: it succeeded)")
    stopped_epoch: int | None = Field(
        None, description="the epochs it completed when it stopped early (early_stopping, max_runtime)")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    priority: int = Field(DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY,
                          description="0 (lowest) to 9: the queue starts higher ones first")
    sweep_id: str | None = Field(None, description="the sweep this job is a trial of")
    trial_index: int | None = Field(None, description="its trial's number in the sweep, from 0")


class JobList(Answer):
    jobs: list[Job]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class MetricPoint(Answer):
    step: int
    kind: Literal["iteration", "epoch"]
    iteration: int | None = None
    epoch: float | None = None
    values: dict[str, Any]
    created_at: str | None = None


class MetricPage(Answer):
    points: list[MetricPoint]
    next_since: int | None = Field(None, description="pass as ?since= for the next page")
    has_more: bool


class DatasetInfo(Answer):
    id: str
    name: str | None = None
    sample_shape: list[int]
    num_classes: int
    n_samples: int
    size_bytes: int
    sha256: str
    created_at: str | None = None


class DatasetList(Answer):
    datasets: list[DatasetInfo]


class PredictRequest(Answer):
    inputs: list = Field(description="samples shaped like the dataset's, e.g. (N, 1, 8, 8)")


class Prediction(Answer):
    predictions: list[int]
    probabilities: list[list[float]]


class ProblemItem(Answer):
    field: str = Field(description="dotted path into the request, e.g. model.layers[0].type")
    message: str


class ProblemDetails(Answer):
    """An error (RFC 9457 problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemItem] = Field(default_factory=list)


class Health(Answer):
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


class LeaderboardRow(Answer):
    """One trial of a sweep, as the leaderboard ranks it."""

    trial: int = Field(description="the trial's number in the sweep, from 0")
    job_id: str | None = Field(None, description="its job (null: its draw was an invalid spec)")
    status: StatusValue | None = None
    params: dict[str, Any] = Field(description="{spec path: value} this trial tries")
    val_accuracy: float | None = None
    val_loss: float | None = None
    epochs: int = Field(0, description="epochs completed")
    reason: str | None = Field(None, description="why it has no metric (null when it has one)")


class Sweep(Answer):
    """A hyperparameter search and its leaderboard (best first by its metric)."""

    id: str
    name: str | None = None
    owner: str | None = None
    status: SweepStatusValue
    metric: str
    method: dict[str, Any]
    space: dict[str, Any]
    max_concurrent: int
    priority: int
    created_at: str
    finished_at: str | None = None
    error: str | None = None
    trials: dict[str, int] = Field(default_factory=dict, description="trials by status")
    best_job_id: str | None = None
    method_state: dict[str, Any] | None = Field(None, description="the method's own progress (ASHA's rungs...)")
    leaderboard: list[LeaderboardRow] = Field(default_factory=list)


class SweepSummary(Answer):
    id: str
    name: str | None = None
    owner: str | None = None
    status: SweepStatusValue
    metric: str
    method: str | None = None
    created_at: str
    finished_at: str | None = None


class SweepList(Answer):
    sweeps: list[SweepSummary]


#: The answer models exported to ``components/schemas`` of the OpenAPI document.
ANSWER_MODELS = (Job, JobList, MetricPage, DatasetInfo, DatasetList, PredictRequest,
                 Prediction, ProblemDetails, Health, Sweep, SweepList, SweepRequest)


def iso(dt: datetime | None) -> str | None:
    """An ISO-8601 UTC string (``...Z``); naive datetimes are read as UTC (SQLite drops zones)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _clean(model: type[BaseModel], data: dict | None) -> dict:
    """Only the keys ``model`` declares (the worker may store extra ones)."""
    data = data or {}
    return {k: data[k] for k in model.model_fields if data.get(k) is not None}


def diagnostic_answer(event) -> dict:
    return Diagnostic(
        code=event.code, severity=event.severity, iteration=event.iteration,
        epoch=event.epoch, message=event.message, data=event.data or {},
        created_at=iso(getattr(event, "created_at", None)),
    ).model_dump(mode="json")


def job_answer(job, diagnostics=(), queue_position: int | None = None) -> dict:
    """The JSON of one job row (``dljobs.db.models.Job``).

    Inputs:
    - job: the ORM row.
    - diagnostics: its ``DiagnosticEvent`` rows, oldest first.
    - queue_position: 1-based place among queued jobs (ignored unless queued).
    Returns: a dict shaped like :class:`Job`.
    """
    worker = None
    if job.worker_host:
        worker = Worker(host=job.worker_host, pid=job.worker_pid)
    error = None
    if job.error_code or job.error_message:
        error = JobErrorInfo(code=job.error_code or "error", message=job.error_message or "")
    progress = _clean(Progress, job.progress)
    if "percent" in progress:
        progress["percent"] = min(100.0, max(0.0, float(progress["percent"])))
    if job.status == JobStatus.SUCCEEDED:
        progress["percent"] = 100.0
    answer = Job(
        id=job.id,
        name=job.name,
        status=job.status,
        attempt=max(1, job.attempt or 0),
        worker=worker,
        queue_position=queue_position if job.status == JobStatus.QUEUED else None,
        progress=Progress(**progress),
        metrics=Metrics(**_clean(Metrics, job.metrics)),
        diagnostics=[Diagnostic(**diagnostic_answer(d)) for d in diagnostics],
        error=error,
        summary=job.summary,
        spec=request_of(job),
        rerun_of=job.rerun_of,
        stop_reason=job.stop_reason,
        stopped_epoch=job.stopped_epoch,
        created_at=iso(job.created_at),
        started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        priority=job.priority if job.priority is not None else DEFAULT_PRIORITY,
        sweep_id=job.sweep_id,
        trial_index=job.trial_index,
    )
    return answer.model_dump(mode="json")


def metric_point_answer(point) -> dict:
    return MetricPoint(
        step=point.step, kind=point.kind, iteration=point.iteration, epoch=point.epoch,
        values=point.values or {}, created_at=iso(point.created_at),
    ).model_dump(mode="json")


def dataset_answer(row) -> dict:
    return DatasetInfo(
        id=row.id, name=row.name, sample_shape=list(row.sample_shape),
        num_classes=row.num_classes, n_samples=row.n_samples, size_bytes=row.size_bytes,
        sha256=row.sha256, created_at=iso(row.created_at),
    ).model_dump(mode="json")


def sweep_summary(sweep) -> dict:
    """A row of ``GET /sweeps``."""
    return SweepSummary(
        id=sweep.id, name=sweep.name, owner=sweep.owner, status=sweep.status, metric=sweep.metric,
        method=(sweep.method or {}).get("type"), created_at=iso(sweep.created_at),
        finished_at=iso(sweep.finished_at),
    ).model_dump(mode="json")


def sweep_answer(sweep, trials) -> dict:
    """The JSON of one sweep with its leaderboard (``dljobs.sweeps.leaderboard``)."""
    board = sweeps.leaderboard(sweep, trials)
    return Sweep(
        id=sweep.id, name=sweep.name, owner=sweep.owner, status=sweep.status, metric=sweep.metric,
        method=sweep.method, space=sweep.space, max_concurrent=sweep.max_concurrent,
        priority=sweep.priority, created_at=iso(sweep.created_at), finished_at=iso(sweep.finished_at),
        error=sweep.error, trials=sweeps.trial_counts(trials), best_job_id=sweeps.best_job_id(board),
        method_state=sweeps.method_state(sweep), leaderboard=[LeaderboardRow(**row) for row in board],
    ).model_dump(mode="json")
