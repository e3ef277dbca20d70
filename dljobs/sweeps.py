"""The sweep scheduler: turns a search method's suggestions into ordinary jobs, and ends sweeps.

Everything a sweep knows is in its row (``sweeps.state``) and in its trials' rows, so any
process can advance any sweep and a restart loses nothing.  :func:`advance` is idempotent
and runs under a lock per sweep (``dljobs.db.locks``), so two workers or an API and a
worker never launch the same trial twice; it is called

- by the API when a sweep is created (its first trials start at once);
- by a worker when a trial's run ends (``workers.tasks``): its slot is free;
- on a periodic tick in every worker (next to ``reconcile_queue``): whatever an event
  missed (a killed process, a lock held at the time) is caught up within seconds.

A trial's job is created with the idempotency key ``sweep:<id>:<index>``: if a process dies
after creating it and before storing the sweep's state, the next advance suggests the same
trial again and gets the same job back.  Trials are created with the sweep's priority,
never more than ``max_concurrent`` of them active at once.

ASHA-like methods give a trial a budget (``jobs.budget_epochs``).  When a trial's run
completes that many epochs, the worker asks :func:`judge_epoch` (the method's
``on_result``): continue, stop (the job ends ``stopped_early``) or promote (the run
checkpoints, the job goes back to the queue with a larger budget and continues from that
checkpoint, as a handed-back job does).

``state`` holds ``{"method": <the method's own state>, "next_index": n, "ended": [job ids
told to on_trial_end], "invalid": [{index, params, reason}], "max_epochs": n}``.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from dlcore.errors import ConfigError, SpecError
from dljobs import jobstore, queries
from dljobs.db.locks import try_exclusive
from dljobs.db.models import Job, Sweep, utcnow
from dljobs.db.session import session_factory
from dljobs.lifecycle import (
    ACTIVE,
    FINISHED,
    MODEL_STATUSES,
    SWEEP_FINISHED,
    JobStatus,
    SweepStatus,
    check_sweep_transition,
)
from dljobs.search.base import Decision, SearchMethod, Trial, score_of
from dljobs.search.space import SearchSpace
from dljobs.settings import Settings, get_settings
from dljobs.specs import prepare_job_request
from dljobs.sweeps_request import PreparedSweep, method_of, trial_body
from dljobs.tokens import Principal

log = logging.getLogger(__name__)

#: How long a worker waits for a sweep's lock to judge a trial at its rung before training on.
JUDGE_LOCK_WAIT_S = 30.0


def lock_name(sweep_id: str) -> str:
    return f"sweep-{sweep_id}"


# ----------------------------------------------------------------------- creating


def create_sweep(session: Session, prepared: PreparedSweep, owner: str | None) -> Sweep:
    """Store a new queued sweep (committed); call :func:`advance` next to start its trials."""
    request = prepared.request
    sweep = Sweep(
        name=request.name,
        owner=owner,
        base=request.base,
        space=request.space,
        method=request.method,
        metric=request.metric,
        max_concurrent=request.max_concurrent,
        priority=request.priority,
        status=SweepStatus.QUEUED,
        state={"method": prepared.method.initial_state(), "next_index": 0, "ended": [], "invalid": [],
               "max_epochs": prepared.max_epochs},
        created_at=utcnow(),
    )
    session.add(sweep)
    session.commit()
    return sweep


def build_method(sweep: Sweep) -> tuple[SearchMethod, SearchSpace]:
    """The sweep's method and space as its row describes them (ConfigError/SpecError if unusable here)."""
    space = SearchSpace.parse(sweep.space)
    return method_of(sweep.method, space, int(sweep.state.get("max_epochs") or 1), sweep.metric), space


def score(metric: str, metrics: dict | None) -> float | None:
    """The sweep's metric of a trial turned so that higher is better, None when it has none."""
    return score_of(metric, (metrics or {}).get(metric))


def _trial(job: Job) -> Trial:
    return Trial(index=int(job.trial_index or 0), params=dict(job.trial_params or {}),
                 epochs=job.budget_epochs, job_id=job.id)


def _move(session: Session, sweep: Sweep, new: SweepStatus, **values) -> None:
    check_sweep_transition(sweep.status, new)
    sweep.status = new
    for key, value in values.items():
        setattr(sweep, key, value)


# ---------------------------------------------------------------------- advancing


def advance(settings: Settings | None, sweep_id: str, enqueue: Callable[[str], Any] | None = None) -> bool:
    """Bring a sweep up to date: tell its method of ended trials, start trials in free slots,
    end it when its method is done and no trial is active.  False when another process
    holds its lock (that one is advancing it) or the sweep is gone or finished.

    ``enqueue(job_id)`` sends a created trial (default ``jobstore.enqueue``); a trial whose
    send fails stays queued and ``reconcile_queue`` sends it later.
    """
    settings = settings or get_settings()
    send = enqueue or (lambda job_id: jobstore.enqueue(job_id, settings=settings))
    with try_exclusive(settings, lock_name(sweep_id)) as ours:
        if not ours:
            return False
        with session_factory(settings)() as session:
            created = _advance_locked(session, settings, sweep_id)
            if created is None:
                return False
    for job_id in created:
        try:
            send(job_id)
        except Exception:  # the job is stored queued: reconcile sends it again
            log.exception("sweep %s: could not send trial job %s; reconcile will", sweep_id, job_id)
    return True


def _advance_locked(session: Session, settings: Settings, sweep_id: str) -> list[str] | None:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.status in SWEEP_FINISHED:
        return None
    try:
        method, space = build_method(sweep)
    except (ConfigError, SpecError) as exc:
        # e.g. this process lacks the method's plugin: another one (the API's) may have it
        log.warning("sweep %s: its search method cannot be built here: %s", sweep_id, exc)
        return None
    state = copy.deepcopy(sweep.state)
    mstate = state["method"]
    trials = queries.sweep_trials(session, sweep_id)
    latest = _latest_per_trial(trials)
    for job in latest.values():
        if job.status in FINISHED and job.id not in state["ended"]:
            method.on_trial_end(mstate, _trial(job), score(sweep.metric, job.metrics))
            state["ended"].append(job.id)
    active = sum(1 for j in trials if j.status in ACTIVE)
    created: list[str] = []
    free = sweep.max_concurrent - active
    if free > 0 and not method.done(mstate):
        owner = Principal(name="sweep", owner=sweep.owner, admin=False) if sweep.owner else None
        for request in method.suggest(mstate, free):
            index = state["next_index"]
            state["next_index"] = index + 1
            job_id = _create_trial(session, settings, sweep, method, space, index, request, owner, state)
            if job_id is not None:
                created.append(job_id)
    if sweep.status == SweepStatus.QUEUED and (created or active):
        _move(session, sweep, SweepStatus.RUNNING)
    if method.done(mstate) and active == 0 and not created:
        _finish(session, sweep, list(latest.values()), state)
    sweep.state = state  # a new object: SQLAlchemy writes the JSON column
    session.commit()
    return created


def _latest_per_trial(trials: list[Job]) -> dict[int, Job]:
    """The newest job of each trial index (a rerun replaces the job it repeats)."""
    out: dict[int, Job] = {}
    for job in trials:  # ordered by index, then age
        out[int(job.trial_index or 0)] = job
    return out


def _create_trial(session, settings, sweep: Sweep, method, space, index: int, request, owner, state) -> str | None:
    name = f"{sweep.name}-t{index}"
    try:
        body = trial_body(sweep.base, method, space, request.params, name)
        prepared = prepare_job_request(session, body, seen_by=owner, settings=settings)
    except (SpecError, ConfigError, ValueError) as exc:
        reason = ("; ".join(f"{e.field}: {e.message}" for e in exc.errors) if isinstance(exc, SpecError)
                  else str(exc))
        state["invalid"].append({"index": index, "params": request.params, "reason": f"invalid spec: {reason}"})
        method.on_trial_end(state["method"], Trial(index, dict(request.params), request.epochs), None)
        return None
    refs = prepared.refs
    job = jobstore.create_job(
        session, prepared.spec, prepared.summary, name, f"sweep:{sweep.id}:{index}",
        owner=sweep.owner, max_attempts=refs.max_attempts, dataset_id=refs.dataset_id,
        warm_start_job_id=refs.warm_start_job_id, priority=sweep.priority,
        trial={"sweep_id": sweep.id, "trial_index": index, "trial_params": request.params,
               "budget_epochs": request.epochs},
    )
    return job.id if getattr(job, "created_now", True) else None


def _finish(session: Session, sweep: Sweep, latest: list[Job], state: dict) -> None:
    if any(j.status in MODEL_STATUSES for j in latest):
        _move(session, sweep, SweepStatus.SUCCEEDED, finished_at=utcnow())
        return
    if sweep.status == SweepStatus.QUEUED and not latest and not state["invalid"]:
        reason = "the search method suggested no trial"
    else:
        reason = f"no trial has a model: {len(latest)} ended without one, {len(state['invalid'])} invalid"
    _move(session, sweep, SweepStatus.FAILED, finished_at=utcnow(), error=reason)


def tick(settings: Settings | None = None, enqueue: Callable[[str], Any] | None = None) -> int:
    """Advance every unfinished sweep (a worker's periodic call); how many were advanced."""
    settings = settings or get_settings()
    with session_factory(settings)() as session:
        ids = queries.unfinished_sweep_ids(session)
    done = 0
    for sweep_id in ids:
        try:
            done += bool(advance(settings, sweep_id, enqueue))
        except Exception:  # one broken sweep never stops the others
            log.exception("sweep %s: advance failed", sweep_id)
    return done


def after_trial(settings: Settings, job_id: str) -> None:
    """A worker's run of a job ended: advance its sweep, if it is a trial."""
    with session_factory(settings)() as session:
        job = session.get(Job, job_id)
        sweep_id = job.sweep_id if job is not None else None
    if sweep_id is not None:
        advance(settings, sweep_id)


# ------------------------------------------------------------------------- cancel


def cancel_sweep(settings: Settings, sweep_id: str) -> None:
    """Cancel a sweep: no trial starts any more, queued ones never run, running ones stop
    cooperatively (``jobstore.request_cancel``, as a job's own cancel).  Idempotent."""
    deadline = time.monotonic() + JUDGE_LOCK_WAIT_S
    factory = session_factory(settings)
    while True:
        with try_exclusive(settings, lock_name(sweep_id)) as ours:
            if ours:
                with factory() as session:
                    sweep = session.get(Sweep, sweep_id)
                    if sweep is not None and sweep.status not in SWEEP_FINISHED:
                        _move(session, sweep, SweepStatus.CANCELLED, finished_at=utcnow())
                        session.commit()
                break
        if time.monotonic() > deadline:
            break  # its holder is stuck: the sweep is cancelled below without the lock
        time.sleep(0.05)
    with factory() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is not None and sweep.status != SweepStatus.CANCELLED and sweep.status not in SWEEP_FINISHED:
            _move(session, sweep, SweepStatus.CANCELLED, finished_at=utcnow())
            session.commit()
        for job in queries.sweep_trials(session, sweep_id):
            if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                jobstore.request_cancel(session, job.id)


# --------------------------------------------------------------------- at a rung


@dataclass
class Verdict:
    decision: Decision
    budget: int | None  # the trial's budget from now on (None: no more questions)


def judge_epoch(settings: Settings, job_id: str, epoch: int, metrics: dict | None) -> Verdict:
    """A trial's run completed ``epoch`` epochs, its budget: what its sweep's method says.

    Under the sweep's lock (waited for, briefly); the decision and the new budget are
    stored before the answer is given, and a repeated question (a resumed run replays the
    epoch) gets the same answer.  A sweep that is gone, finished or cannot be read lets
    the trial train on (its cancel, if any, reaches the job itself).
    """
    factory = session_factory(settings)
    with factory() as session:
        job = session.get(Job, job_id)
        sweep_id = job.sweep_id if job is not None else None
    if sweep_id is None:
        return Verdict(Decision.CONTINUE, None)
    deadline = time.monotonic() + JUDGE_LOCK_WAIT_S
    while True:
        with try_exclusive(settings, lock_name(sweep_id)) as ours:
            if ours:
                with factory() as session:
                    return _judge_locked(session, sweep_id, job_id, epoch, metrics)
        if time.monotonic() > deadline:
            log.warning("job %s: sweep %s stayed locked; training on", job_id, sweep_id)
            return Verdict(Decision.CONTINUE, None)
        time.sleep(0.05)


def _judge_locked(session: Session, sweep_id: str, job_id: str, epoch: int, metrics: dict | None) -> Verdict:
    sweep = session.get(Sweep, sweep_id)
    job = session.get(Job, job_id)
    if sweep is None or job is None or sweep.status in SWEEP_FINISHED:
        return Verdict(Decision.CONTINUE, job.budget_epochs if job is not None else None)
    try:
        method, _space = build_method(sweep)
    except (ConfigError, SpecError) as exc:
        log.warning("sweep %s: cannot judge job %s here: %s", sweep_id, job_id, exc)
        return Verdict(Decision.CONTINUE, job.budget_epochs)
    state = copy.deepcopy(sweep.state)
    trial = _trial(job)
    decision = method.on_result(state["method"], trial, int(epoch), score(sweep.metric, metrics))
    budget = trial.epochs if decision == Decision.PROMOTE else None
    if decision == Decision.STOP:
        budget = job.budget_epochs
    session.execute(update(Job).where(Job.id == job_id).values(budget_epochs=budget))
    sweep.state = state
    session.commit()
    return Verdict(decision, budget)


# ---------------------------------------------------------------------- answers


def leaderboard(sweep: Sweep, trials: list[Job]) -> list[dict]:
    """Trials best first by the sweep's metric at each trial's last epoch; those without one
    last, by index, with their reason (invalid draws among them)."""
    rows = []
    for job in _latest_per_trial(trials).values():
        metrics = job.metrics or {}
        rows.append({
            "trial": job.trial_index,
            "job_id": job.id,
            "status": job.status,
            "params": job.trial_params or {},
            "val_accuracy": metrics.get("val_accuracy"),
            "val_loss": metrics.get("val_loss"),
            "epochs": _epochs_done(job),
            "reason": None if score(sweep.metric, metrics) is not None else _no_metric_reason(job),
            "_score": score(sweep.metric, metrics),
        })
    for invalid in (sweep.state or {}).get("invalid", []):
        rows.append({"trial": invalid["index"], "job_id": None, "status": None, "params": invalid["params"],
                     "val_accuracy": None, "val_loss": None, "epochs": 0, "reason": invalid["reason"],
                     "_score": None})
    scored = sorted((r for r in rows if r["_score"] is not None), key=lambda r: (-r["_score"], r["trial"]))
    unscored = sorted((r for r in rows if r["_score"] is None), key=lambda r: r["trial"])
    for row in scored + unscored:
        row.pop("_score")
    return scored + unscored


def _epochs_done(job: Job) -> int:
    progress = job.progress or {}
    return int(progress.get("epoch") or 0)


def _no_metric_reason(job: Job) -> str:
    if job.error_message:
        return job.error_message
    if job.status in ACTIVE:
        return f"{job.status}: no epoch completed yet"
    return f"{job.status} before its first epoch"


def best_job_id(board: list[dict]) -> str | None:
    for row in board:
        if row["reason"] is None:
            return row["job_id"]
    return None


def method_state(sweep: Sweep) -> dict | None:
    """What the sweep's method shows of its progress (``describe_state``), None if it cannot say here."""
    try:
        method, _ = build_method(sweep)
    except (ConfigError, SpecError):
        return None
    return method.describe_state((sweep.state or {}).get("method") or {})


def trial_counts(trials: list[Job]) -> dict[str, int]:
    """How many trials are in each status (the newest job of each trial)."""
    counts: dict[str, int] = {}
    for job in _latest_per_trial(trials).values():
        counts[job.status] = counts.get(job.status, 0) + 1
    return counts
