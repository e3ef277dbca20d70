"""Every change to a job goes through here, for the API and the workers alike.

Each status change, progress write, metric point and diagnostic also appends a row to
``job_events`` (the Server-Sent Events log), in the same transaction.  A worker's writes
carry its attempt number and are refused (``None`` / ``False``) once another attempt has
claimed the job, so a superseded worker can never overwrite a newer one.

Every status change goes through the lifecycle's table (:mod:`dljobs.lifecycle`): the
old status is read, ``check_transition(old, new)`` raises on a move the table does not
allow, and the UPDATE is conditional on the status still being ``old`` (a race is then
a refused write, never a silent one).  The claim is one conditional UPDATE whose moves,
``CLAIM_MOVES``, are checked against the table when this module is imported.

Functions taking a ``session`` commit it themselves unless they say otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from dljobs import artifacts
from dljobs.broker import TRAIN_TASK, broker_holdings, message_priority, producer
from dljobs.db.locks import try_exclusive
from dljobs.db.models import (
    DiagnosticEvent,
    Job,
    JobEvent,
    MetricPoint,
    utcnow,
)
from dljobs.db.session import session_factory
from dljobs.lifecycle import (
    ACTIVE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    FINISHED,
    LIVE,
    JobStatus,
    StopReason,
    check_transition,
)
from dljobs.settings import get_settings

log = logging.getLogger(__name__)

#: What claiming does to a takeable job: a queued one runs; a live one whose worker was lost
#: is taken over as it is (a job asked to cancel stays cancelling: its new worker ends it
#: cancelled at its first check).
CLAIM_MOVES: dict[JobStatus, JobStatus] = {
    JobStatus.QUEUED: JobStatus.RUNNING,
    JobStatus.RUNNING: JobStatus.RUNNING,
    JobStatus.CANCELLING: JobStatus.CANCELLING,
}
for _old, _new in CLAIM_MOVES.items():
    check_transition(_old, _new)  # the table and the claim cannot drift apart unnoticed


# ---------------------------------------------------------------------------- events


def append_event(session: Session, job_id: str, type: str, data: dict) -> None:
    """Add one SSE log row (not committed)."""
    session.add(JobEvent(job_id=job_id, type=type, data=data))


def status_event_data(job: Job) -> dict:
    return {
        "status": job.status,
        "attempt": max(1, job.attempt or 0),
        "error": job.error,
        "worker": {"host": job.worker_host, "pid": job.worker_pid} if job.worker_host else None,
    }


def events_since(session: Session, job_id: str, after_id: int = 0, limit: int = 500):
    """The SSE log of a job after event id ``after_id``, oldest first."""
    stmt = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


# ------------------------------------------------------------------ API-side changes


def find_by_idempotency_key(session: Session, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.idempotency_key == key))


def create_job(
    session: Session,
    spec: dict,
    summary: dict | None,
    name: str | None = None,
    idempotency_key: str | None = None,
    *,
    request_hash: str | None = None,
    owner: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    dataset_id: str | None = None,
    warm_start_job_id: str | None = None,
    rerun_of: str | None = None,
    priority: int = DEFAULT_PRIORITY,
    trial: dict | None = None,
    sending: bool = False,
    key_checked: bool = False,
) -> Job:
    """Store a new queued job (committed) and log its first status event.

    ``spec`` is a plain dlcore spec (a ``ValidatedSpec`` is stored as its dict);
    ``max_attempts``, ``dataset_id`` and ``warm_start_job_id`` are the typed references
    of ``dljobs.specs.JobRefs``; ``rerun_of`` is the id of the job this one repeats.
    ``priority`` is 0-9 (the queue takes higher ones first); ``trial`` the columns of a
    sweep's trial (``sweep_id``, ``trial_index``, ``trial_params``, ``budget_epochs``).

    With an ``idempotency_key`` already used, the existing job is returned instead and
    ``job.created_now`` is False (compare ``job.request_hash`` to tell a replay from a
    conflicting reuse of the key).  Call :func:`enqueue` after this returns.

    ``sending=True`` says the caller calls :func:`enqueue` right after (the API does):
    ``enqueued_at`` is then written with the row, in this one transaction, and the
    enqueue needs no second one (it clears the mark only if the send fails); the job's
    place in the queue, which the answer shows, is counted in it too.
    ``key_checked=True`` says the caller looked the key up in this request already (the
    API does, before validating the spec): no second lookup; a key taken since then still
    fails the unique INSERT, and the rollback branch answers with the existing job.
    """
    if idempotency_key is not None and not key_checked:
        # A caller with other uncommitted work (a sweep's step) must not meet the rollback.
        existing = find_by_idempotency_key(session, idempotency_key)
        if existing is not None:
            existing.created_now = False
            return existing
    spec = spec.to_dict() if hasattr(spec, "to_dict") else spec
    job = Job(
        spec=spec,
        summary=summary,
        name=name or spec.get("name"),
        status=JobStatus.QUEUED,
        attempt=0,
        max_attempts=int(max_attempts),
        dataset_id=dataset_id,
        warm_start_job_id=warm_start_job_id,
        rerun_of=rerun_of,
        priority=int(priority),
        **(trial or {}),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        owner=owner,
        created_at=utcnow(),
    )
    if sending:
        job.enqueued_at = job.created_at
    try:
        # The INSERT (at flush) is where a racing request with the same key fails.
        session.add(job)
        session.flush()
        append_event(session, job.id, "status", status_event_data(job))
        position = _count_position(session, job) if sending else None
        session.commit()
    except Exception:
        session.rollback()
        if idempotency_key is not None:
            # Two requests raced with one key: the other one won, answer with its job.
            existing = find_by_idempotency_key(session, idempotency_key)
            if existing is not None:
                existing.created_now = False
                return existing
        raise
    # A job this instant old has no diagnostics: say so, instead of a query per submit
    # when the answer renders them.
    set_committed_value(job, "diagnostics", [])
    job.created_now = True
    job.send_recorded = sending  # enqueue: enqueued_at is in the row already
    if position is not None:
        job.queue_position_at_create = position
    return job


def runtime_limit_s(spec: dict, settings) -> float:
    """The job's ``training.max_runtime_s``, capped by ``DLJOBS_MAX_RUNTIME_S``."""
    asked = (spec.get("training") or {}).get("max_runtime_s") or settings.max_runtime_s
    return min(float(asked), float(settings.max_runtime_s))


def enqueue(job_id: str, settings=None, session: Session | None = None) -> None:
    """Send the Celery task ``dljobs.train_job`` for a job and record ``enqueued_at``.

    The database stays the source of truth: if sending fails the job stays queued and
    :func:`reconcile_queue` sends it again later.
    """

    settings = settings or get_settings()
    own_session = session is None
    if own_session:
        session = session_factory(settings)()
    try:
        job = session.get(Job, job_id)
        if job is None:
            return
        # Written with the row by create_job(sending=True): this send needs no transaction
        # of its own unless it fails (once: a resend by the reconciler writes it as usual).
        recorded = job.__dict__.pop("send_recorded", False)
        limit = math.ceil(runtime_limit_s(job.spec or {}, settings))  # Celery's limits are whole seconds
        try:
            producer(settings).send_task(
                TRAIN_TASK,
                args=[job_id],
                queue=settings.queue_name,
                priority=message_priority(settings, job.priority),
                soft_time_limit=limit,
                time_limit=limit + 60,
            )
        except Exception:
            log.exception("could not send job %s to the broker; reconcile will retry", job_id)
            if recorded:
                mark_unsent(session, job_id)
            return
        if recorded:
            return
        if session.get_bind().dialect.name == "postgresql":
            # enqueued_at only tells the reconciler not to send again yet: lost in a crash,
            # the job is sent twice and the claim drops the copy. So this commit need not
            # wait for the WAL's fsync (several ms a submit, the larger part of its time).
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))
        session.commit()
    finally:
        if own_session:
            session.close()


def mark_unsent(session: Session, job_id: str) -> None:
    """A send recorded with the row that did not happen: the reconciler's next pass sends it."""
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=None))
    session.commit()


def _current_status(session: Session, job_id: str, *conditions) -> JobStatus | None:
    """The job's status as the database has it now (None if absent or ``conditions`` fail)."""
    status = session.scalar(select(Job.status).where(Job.id == job_id, *conditions))
    return None if status is None else JobStatus(status)


def move(session: Session, job_id: str, old: JobStatus, new: JobStatus, *conditions, **values) -> bool:
    """Change a job's status from ``old`` to ``new`` (not committed); False if it is no longer ``old``.

    Raises ``IllegalTransition`` when the lifecycle's table has no ``old -> new``: the
    one door every status-changing UPDATE of this module goes through.
    """
    new = check_transition(old, new)
    done = session.execute(
        update(Job).where(Job.id == job_id, Job.status == old, *conditions).values(status=new, **values)
    ).rowcount
    return bool(done)


#: What a cancel request does, by the job's status (any other status: nothing).
CANCEL_MOVES: dict[JobStatus, JobStatus] = {
    JobStatus.QUEUED: JobStatus.CANCELLED,
    JobStatus.RUNNING: JobStatus.CANCELLING,
}


def request_cancel(session: Session, job_id: str) -> Job | None:
    """Cancel cooperatively and idempotently: queued -> cancelled, running -> cancelling.

    Returns the job (None if it does not exist); a finished or cancelling job is left as it is.
    """
    old = _current_status(session, job_id)
    new = CANCEL_MOVES.get(old) if old is not None else None
    if new is not None:
        extra = {"finished_at": utcnow(), "stop_reason": StopReason.CANCELLED} if new in FINISHED else {}
        if move(session, job_id, old, new, **extra):
            job = session.get(Job, job_id, populate_existing=True)
            append_event(session, job_id, "status", status_event_data(job))
            session.commit()
            return job
        session.rollback()  # it moved meanwhile (claimed, finished): look again
        return request_cancel(session, job_id)
    session.commit()
    return session.get(Job, job_id, populate_existing=True)


def delete_job(session: Session, job_id: str) -> bool:
    """Delete a finished job with its history and artifacts (False if absent or active)."""
    job = session.get(Job, job_id)
    if job is None or job.status not in FINISHED:
        return False
    for model in (JobEvent, MetricPoint, DiagnosticEvent):
        session.execute(delete(model).where(model.job_id == job_id))
    artifacts.delete_job_artifacts(session, job_id)
    session.delete(job)
    session.commit()
    return True


def queue_positions(session: Session, job_ids: Iterable[str]) -> dict[str, int]:
    """1-based places in the queue (highest priority first, then oldest) of those ``job_ids`` queued."""
    wanted = set(job_ids)
    if not wanted:
        return {}
    rows = session.scalars(
        select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.priority.desc(), Job.created_at, Job.id)
    )
    out = {}
    for position, job_id in enumerate(rows, start=1):
        if job_id in wanted:
            out[job_id] = position
            if len(out) == len(wanted):
                break
    return out


def queue_position(session: Session, job: Job) -> int | None:
    """1 for the next queued job to be taken, None for a job that is not queued."""
    if job.status != JobStatus.QUEUED:
        return None
    counted = job.__dict__.pop("queue_position_at_create", None)
    if counted is not None:
        # Counted in create_job's own transaction (sending=True): the place it is answered
        # with, without a transaction (a pooled checkout and its ping) of its own. Once only.
        return counted
    return _count_position(session, job)


def _count_position(session: Session, job: Job) -> int | None:
    # One count in the database, not every queued id fetched (each submit answers with its
    # place: with thousands queued, the fetch was most of a submit's time). The job's own
    # created_at is read there too, so no datetime crosses the driver and back.
    mine = select(Job.created_at).where(Job.id == job.id).scalar_subquery()
    ahead, present = session.execute(
        select(func.count(), func.coalesce(func.sum(case((Job.id == job.id, 1), else_=0)), 0)).where(
            Job.status == JobStatus.QUEUED,
            or_(Job.created_at < mine, and_(Job.created_at == mine, Job.id <= job.id)),
        )
    ).one()
    return int(ahead) if present else None


def metric_points(
    session: Session, job_id: str, since: int = -1, limit: int = 1000, kind: str | None = None
):
    """Metric history of a job with ``step > since`` (of one ``kind`` if given), oldest first."""
    stmt = (
        select(MetricPoint)
        .where(MetricPoint.job_id == job_id, MetricPoint.step > since)
        .order_by(MetricPoint.step)
        .limit(limit)
    )
    if kind:
        stmt = stmt.where(MetricPoint.kind == kind)
    return list(session.scalars(stmt))


# --------------------------------------------------------------- worker-side changes


def take_higher_priority(session: Session, job_id: str, settings) -> str:
    """On a broker without message priorities (the filesystem transport): the job to run for a
    message of ``job_id``.  When a queued job of higher priority waits, that one is taken
    instead and ``job_id`` is sent again (its message goes to the back of the queue); the other
    job's own message later finds it taken and is dropped.  No job is lost either way: a race
    for the other job ends as any duplicate claim does.
    """
    mine = session.scalar(select(Job.priority).where(Job.id == job_id, Job.status == JobStatus.QUEUED))
    if mine is None:
        session.commit()
        return job_id
    better = session.scalar(
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED, Job.priority > mine)
        .order_by(Job.priority.desc(), Job.created_at, Job.id)
        .limit(1)
    )
    session.commit()
    if better is None:
        return job_id
    enqueue(job_id, settings=settings, session=session)
    log.info("job %s waits behind job %s of higher priority", job_id, better)
    return better


def claim(
    session: Session,
    job_id: str,
    host: str,
    pid: int,
    heartbeat_timeout: float,
    *,
    dead_holder: tuple[str, int] | None = None,
) -> int | None:
    """Take a job with ONE conditional UPDATE; the new attempt number, or None.

    A queued job, or a running one whose worker's heartbeat is older than
    ``heartbeat_timeout`` seconds, becomes running with ``attempt + 1``; so does a live
    one held by ``dead_holder`` ``(host, pid)``, a process the caller saw is gone.  A job
    that has used up its attempts that way ends failed ("worker lost N times (last
    host:pid)").  None means the job is not takeable now (see :func:`live_holder`).
    """
    now = utcnow()
    stale = now - timedelta(seconds=heartbeat_timeout)
    takeable = or_(
        Job.status == JobStatus.QUEUED,
        and_(Job.status.in_(LIVE), or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale)),
    )
    if dead_holder is not None:
        # Its heartbeat is still fresh, but the process that wrote it is gone.
        takeable = or_(
            takeable,
            and_(Job.status.in_(LIVE), Job.worker_host == dead_holder[0], Job.worker_pid == dead_holder[1]),
        )
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, takeable, Job.status.in_(CLAIM_MOVES), attempts_left(Job))
        .values(
            status=case(*((Job.status == old, new) for old, new in CLAIM_MOVES.items())),
            attempt=Job.attempt + 1,
            worker_host=host,
            worker_pid=pid,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.attempt, Job.status)
    ).first()
    if row is not None:
        attempt, status = int(row[0]), row[1]
        _rewind_metrics(session, job_id, attempt)
        append_event(
            session,
            job_id,
            "status",
            {
                "status": status,
                "attempt": attempt,
                "error": None,
                "worker": {"host": host, "pid": pid},
            },
        )
        session.commit()
        return attempt
    session.commit()
    _fail_if_attempts_exhausted(session, job_id, stale)
    return None


def live_holder(session: Session, job_id: str) -> tuple[str, int] | None:
    """``(host, pid)`` of the worker holding a live job, or None (not live, or nobody)."""
    row = session.execute(
        select(Job.worker_host, Job.worker_pid).where(Job.id == job_id, Job.status.in_(LIVE))
    ).first()
    session.commit()
    if row is None or row[0] is None or row[1] is None:
        return None
    return str(row[0]), int(row[1])


def attempts_left(job) -> Any:
    """Whether a new attempt may start: hand-backs (orderly stops) do not use one up."""
    return job.attempt - job.handbacks < job.max_attempts


def _rewind_metrics(session: Session, job_id: str, attempt: int) -> None:
    """Delete (not committed) the points earlier attempts wrote past the checkpoint the new
    attempt resumes from: it writes those iterations again, and the history must hold each once.

    The SSE log gets a ``rewind`` event, so a client following it drops them too.
    """
    checkpoint = artifacts.latest_checkpoint(session, job_id)  # complete ones only: what run_job resumes from
    resume_at = int(checkpoint.iteration) if checkpoint is not None else 0
    dropped = session.execute(
        delete(MetricPoint).where(
            MetricPoint.job_id == job_id,
            MetricPoint.iteration > resume_at,
            or_(MetricPoint.attempt.is_(None), MetricPoint.attempt < attempt),
        )
    ).rowcount
    if dropped:
        append_event(session, job_id, "rewind", {"iteration": resume_at, "attempt": attempt, "dropped": int(dropped)})


def _fail_if_attempts_exhausted(session: Session, job_id: str, stale: datetime) -> None:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status not in LIVE or attempts_left(job):
        return
    if job.heartbeat_at is not None and job.heartbeat_at >= stale:
        return
    message = f"worker lost {job.attempt - job.handbacks} times (last {job.worker_host}:{job.worker_pid})"
    old = JobStatus(job.status)
    if old == JobStatus.CANCELLING:  # the user asked to stop it anyway
        new, values = JobStatus.CANCELLED, {"finished_at": utcnow(), "stop_reason": StopReason.CANCELLED}
    else:
        new, values = JobStatus.FAILED, {
            "error_code": "worker_lost",
            "error_message": message,
            "finished_at": utcnow(),
        }
    if move(session, job_id, old, new, Job.attempt == job.attempt, **values):
        job = session.get(Job, job_id, populate_existing=True)
        append_event(session, job_id, "status", status_event_data(job))
    session.commit()


def _touch(session: Session, job_id: str, attempt: int, **values) -> str | None:
    """Heartbeat (plus ``values``) guarded by the attempt; the job's status, or None."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status.in_(LIVE))
        .values(heartbeat_at=utcnow(), **values)
        .returning(Job.status)
    ).first()
    return None if row is None else row[0]


def heartbeat(session: Session, job_id: str, attempt: int) -> str | None:
    """Refresh the heartbeat; returns the live status (running, cancelling), or None if superseded."""
    status = _touch(session, job_id, attempt)
    session.commit()
    return status


def report(
    session: Session,
    job_id: str,
    attempt: int,
    *,
    progress: dict | None = None,
    metrics: dict | None = None,
    points: Iterable[dict] = (),
    diagnostics: Iterable[dict] = (),
) -> str | None:
    """One guarded write of what a worker has to say, with a heartbeat.

    ``points``: dicts ``{kind, iteration, epoch, values}`` (steps are assigned here);
    ``diagnostics``: dicts ``{code, severity, iteration, epoch, message, data}``.
    Checkpoints are not written here: ``dljobs.artifacts.write_artifact`` stores them in
    chunks outside any transaction that holds the job's row.
    Returns the job's live status (running or cancelling), or None when this attempt was
    superseded (nothing is written then).
    """
    values: dict[str, Any] = {}
    if progress is not None:
        values["progress"] = progress
    if metrics is not None:
        values["metrics"] = metrics
    status = _touch(session, job_id, attempt, **values)
    if status is None:
        session.rollback()
        return None
    # Core bulk inserts: a fast model reports hundreds of iterations per flush, and one
    # ORM object per row would cost more than the training steps themselves.
    metric_rows: list[dict] = []
    diagnostic_rows: list[dict] = []
    event_rows: list[dict] = []
    points = list(points)
    if points:
        last = session.scalar(
            select(func.max(MetricPoint.step)).where(MetricPoint.job_id == job_id)
        )
        step = -1 if last is None else int(last)
        for point in points:
            step += 1
            row = {
                "step": step,
                "kind": point["kind"],
                "iteration": int(point["iteration"]),
                "epoch": float(point["epoch"]),
                "values": point["values"],
            }
            metric_rows.append({"job_id": job_id, "attempt": attempt, **row})
            event_rows.append({"job_id": job_id, "type": "metrics", "data": row})
    for diag in diagnostics:
        diagnostic_rows.append(
            {
                "job_id": job_id,
                "code": diag["code"],
                "severity": diag["severity"],
                "iteration": int(diag.get("iteration", 0)),
                "epoch": float(diag.get("epoch", 0.0)),
                "message": diag["message"],
                "data": diag.get("data") or {},
            }
        )
        event_rows.append({"job_id": job_id, "type": "diagnostic", "data": dict(diag)})
    if progress is not None:
        event_rows.append({"job_id": job_id, "type": "progress", "data": progress})
    now = utcnow()
    for model, rows in ((MetricPoint, metric_rows), (DiagnosticEvent, diagnostic_rows), (JobEvent, event_rows)):
        if rows:
            session.execute(insert(model), [dict(r, created_at=now) for r in rows])
    session.commit()
    return status


def release(session: Session, job_id: str, attempt: int) -> bool:
    """Hand a job back on worker shutdown (see :mod:`dljobs.lifecycle`, "Hand-backs"): its
    heartbeat is cleared, so the next delivery (or reconcile) claims it at once and resumes
    from the last checkpoint, and ``handbacks`` counts it, so the attempt is not used up."""
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status.in_(LIVE), Job.heartbeat_at.is_not(None))
        .values(heartbeat_at=None, handbacks=Job.handbacks + 1)
    ).rowcount
    session.commit()
    return bool(done)


def release_workers(session: Session, host: str, pids: Iterable[int]) -> list[str]:
    """Hand back every live job held by these worker processes (stopped on purpose).

    A job its worker already handed back (heartbeat cleared) is not counted twice.
    """
    pids = [int(p) for p in pids]
    if not pids:
        return []
    ids = list(
        session.scalars(
            update(Job)
            .where(
                Job.status.in_(LIVE),
                Job.worker_host == host,
                Job.worker_pid.in_(pids),
                Job.heartbeat_at.is_not(None),
            )
            .values(heartbeat_at=None, handbacks=Job.handbacks + 1)
            .returning(Job.id)
        )
    )
    session.commit()
    return ids


def finish(
    session: Session,
    job_id: str,
    attempt: int | None,
    status: JobStatus,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    metrics: dict | None = None,
    progress: dict | None = None,
    stop_reason: StopReason | None = None,
    stopped_epoch: int | None = None,
) -> bool:
    """End a job (guarded by ``attempt``; None ends it whatever attempt holds it).

    False when the job is already finished or another attempt holds it; raises
    ``IllegalTransition`` when the table has no move from its status to ``status``.
    """
    status = JobStatus(status)
    if status not in FINISHED:
        raise ValueError(f"finish: {status!r} is not a final status")
    conditions = [] if attempt is None else [Job.attempt == attempt]
    old = _current_status(session, job_id, *conditions)
    if old is None or old not in ACTIVE:
        session.rollback()
        return False
    values: dict[str, Any] = {
        "finished_at": utcnow(),
        "error_code": error_code,
        "error_message": error_message,
        "stop_reason": stop_reason,
        "stopped_epoch": stopped_epoch,
    }
    if metrics is not None:
        values["metrics"] = metrics
    if progress is not None:
        values["progress"] = progress
    if not move(session, job_id, old, status, *conditions, **values):
        session.rollback()
        return False
    job = session.get(Job, job_id, populate_existing=True)
    if progress is not None:
        append_event(session, job_id, "progress", progress)
    append_event(session, job_id, "status", status_event_data(job))
    session.commit()
    return True


# ------------------------------------------------------------------------ reconcile


#: Seconds a message delivered but not yet acknowledged counts as held for its job
#: (at least): a worker is claiming it, or it is a retry counting down.
RECENT_DELIVERY_S = 10.0


def reconcile_queue(settings=None, older_than_s: float | None = None) -> list[str]:
    """Send again every job whose message the broker no longer holds; the ids sent.

    The database is the source of truth.  One pass runs at a time across all workers (a
    database lock; a worker that finds it taken skips its turn).  A candidate is a job
    queued for longer than ``older_than_s`` (default ``DLJOBS_RECONCILE_AFTER_S``) since
    its last send (or never sent), or a live one whose worker released it or whose
    heartbeat is older than ``DLJOBS_HEARTBEAT_TIMEOUT_S``.  Of those, only the ones the
    broker holds no message for are sent: by job id where the transport shows its
    messages (Redis, the filesystem transport), by count on AMQP (a queued job never
    sent, then the oldest queued ones, up to the number of messages missing).  Claiming
    drops any duplicate this may still create.
    """

    settings = settings or get_settings()
    if older_than_s is None:
        older_than_s = settings.reconcile_after_s
    with try_exclusive(settings, "reconcile") as ours:
        if not ours:
            return []
        return _reconcile(settings, older_than_s)


def _reconcile(settings, older_than_s: float) -> list[str]:
    now = utcnow()
    unsent_before = now - timedelta(seconds=older_than_s)
    stale = now - timedelta(seconds=settings.heartbeat_timeout_s)
    queued = and_(
        Job.status == JobStatus.QUEUED, or_(Job.enqueued_at.is_(None), Job.enqueued_at <= unsent_before)
    )
    live = or_(
        and_(Job.status.in_(LIVE), Job.heartbeat_at.is_(None)),
        and_(
            Job.status.in_(LIVE),
            Job.heartbeat_at < stale,
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale),
        ),
    )
    factory = session_factory(settings)
    with factory() as session:
        rows = session.execute(
            select(Job.id, Job.status, Job.enqueued_at).where(or_(queued, live)).order_by(Job.created_at)
        ).all()
        if not rows:
            return []
        try:
            held = broker_holdings(settings, recent_s=max(older_than_s, RECENT_DELIVERY_S))
        except Exception:
            log.warning("reconcile: cannot see the broker's queue; sending nothing", exc_info=True)
            return []
        if held.job_ids is not None:
            ids = [job_id for job_id, _status, _sent in rows if job_id not in held.job_ids]
        elif held.count is not None:
            ids = _missing_by_count(session, rows, held.count)
        else:
            ids = [job_id for job_id, _status, _sent in rows]
        for job_id in ids:
            enqueue(job_id, settings=settings, session=session)
    if ids:
        log.info("reconcile: %d of %d candidate job(s) had no message; sent again", len(ids), len(rows))
    return ids


def _missing_by_count(session: Session, rows, waiting: int) -> list[str]:
    """On a broker that only counts (AMQP): the queued jobs never sent, then the oldest
    queued candidates up to the number of queued jobs without a waiting message; live
    candidates as the heartbeat says."""
    queued_total = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED)) or 0
    missing = max(0, int(queued_total) - waiting)
    queued_rows = [r for r in rows if r[1] == JobStatus.QUEUED]
    first = [r[0] for r in queued_rows if r[2] is None]
    rest = [r[0] for r in queued_rows if r[2] is not None][: max(0, missing - len(first))]
    live = [r[0] for r in rows if r[1] != JobStatus.QUEUED]
    return first + rest + live
