"""The job lifecycle: every status, every legal move between them, every reason a job stops.

This is the one home of these names. The database column, the API's answers and
filters, the workers, the client, the CLI and the demo import them from here; a test
reads the product sources and fails on a status spelled as a string anywhere else.

Statuses (docs/architecture.md draws them)::

    queued -> running -> succeeded | failed | cancelled | stopped_early
                 \\-> cancelling -> cancelled (or succeeded / failed, when the run ends first)

``stopped_early`` is a sweep's early stopping (ASHA); a job that ends by its own
``early_stopping`` rule *succeeds*, with ``stop_reason`` ``early_stopping``.

Every status-changing UPDATE goes through :func:`check_transition` (``jobstore.move``, and
the claim's moves checked when ``jobstore`` is imported), so an illegal move is an error,
never a silent write. The table lists the moves the service makes, and no others.

Hand-backs: a worker stopped on purpose (a warm shutdown, ``dljobs up`` stopped) checkpoints
the job and gives it back *keeping its status* (running or cancelling): ``jobstore.release``
clears the heartbeat and counts the hand-back in ``jobs.handbacks``.  The next claim takes it
over at once (a cleared heartbeat is stale), the table's running -> running (cancelling ->
cancelling) move, and resumes from the checkpoint.  A claim needs
``attempt - handbacks < max_attempts``: only a worker *lost* under the job uses an attempt up,
so restarting the service any number of times never fails a job.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is. Values are what the database stores and the API answers."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED_EARLY = "stopped_early"


#: Every status, in lifecycle order (the API's ?status= filter and the OpenAPI enum).
STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)
#: A worker is training it (or is asked to stop): heartbeats, progress and cancel checks apply.
LIVE: frozenset[JobStatus] = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})
#: Not finished yet: queued or live.
ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.QUEUED}) | LIVE
#: Nothing will change it any more.
FINISHED: frozenset[JobStatus] = frozenset(STATUSES) - ACTIVE

#: Attempts a job gets before a worker dying under it once more fails it ("worker lost N times").
DEFAULT_MAX_ATTEMPTS = 3

#: The legal moves. A move not listed here is a bug in the caller.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # claimed by a worker; cancelled before it ran
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    # asked to stop; ended (stopped_early: by a sweep's scheduler, which the sweeps issue adds); or
    # claimed by a new attempt when its worker was lost
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.CANCELLING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.STOPPED_EARLY,
            JobStatus.RUNNING,
        }
    ),
    # the worker saw the cancel; or the run ended before it looked; or a new attempt takes it over
    JobStatus.CANCELLING: frozenset(
        {JobStatus.CANCELLED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLING}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.STOPPED_EARLY: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A caller tried a move the table does not allow."""

    def __init__(self, old: JobStatus | str, new: JobStatus | str):
        super().__init__(f"a job cannot go from {str(old)!r} to {str(new)!r}")
        self.old, self.new = old, new


def check_transition(old: JobStatus | str, new: JobStatus | str) -> JobStatus:
    """``new`` as a JobStatus when ``old -> new`` is legal; raises :class:`IllegalTransition` otherwise."""
    old_s, new_s = JobStatus(old), JobStatus(new)
    if new_s not in TRANSITIONS[old_s]:
        raise IllegalTransition(old_s, new_s)
    return new_s


class StopReason(StrEnum):
    """Why a run ended before its last epoch, as stored in the job's ``stop_reason``.

    ``early_stopping`` and ``max_runtime`` are also the trainer's own words
    (``dlcore.training.TrainResult.stop_reason``).
    """

    EARLY_STOPPING = "early_stopping"  # the spec's own rule: the job succeeds
    CANCELLED = "cancelled"  # a user asked
    MAX_RUNTIME = "max_runtime"  # training.max_runtime_s reached: the job fails, its last epoch kept
    SUPERSEDED = "superseded"  # another attempt took the job over
    HANDED_BACK = "handed_back"  # its worker stopped on purpose: the job waits, running, for the next
    SWEEP_STOPPED = "sweep_stopped"  # its sweep's method stopped it at a rung (ASHA): it ends stopped_early
    SWEEP_PROMOTED = "sweep_promoted"  # its sweep's method promoted it: checkpointed, queued again, resumed


#: The final statuses whose job always has a downloadable model.
MODEL_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.STOPPED_EARLY})


def has_model(status: JobStatus | str, stop_reason: StopReason | str | None, stopped_epoch: int | None = None) -> bool:
    """Whether a job in ``status`` (ended for ``stop_reason`` after ``stopped_epoch`` epochs) keeps a
    model to download and predict with.

    A job stopped at ``max_runtime`` fails, and keeps the weights of its last completed epoch: it has
    a model only when it completed one.
    """
    if JobStatus(status) in MODEL_STATUSES:
        return True
    return JobStatus(status) == JobStatus.FAILED and stop_reason == StopReason.MAX_RUNTIME and bool(stopped_epoch)


# ----------------------------------------------------------------------------- sweeps


class SweepStatus(StrEnum):
    """Where a sweep is (``dljobs.sweeps``): values the database stores and the API answers.

    ``queued`` until its first trial is created; ``running`` while its method suggests
    trials or any trial is active; then ``succeeded`` (a trial has a model to show for it),
    ``failed`` (none has: every trial failed or was invalid) or ``cancelled`` (a user asked).
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


SWEEP_STATUSES: tuple[SweepStatus, ...] = tuple(SweepStatus)
#: Nothing will change such a sweep any more.
SWEEP_FINISHED: frozenset[SweepStatus] = frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED})
#: The sweep moves its scheduler makes (and the API's cancel); no others.
SWEEP_TRANSITIONS: dict[SweepStatus, frozenset[SweepStatus]] = {
    SweepStatus.QUEUED: frozenset({SweepStatus.RUNNING, SweepStatus.FAILED, SweepStatus.CANCELLED}),
    SweepStatus.RUNNING: frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED}),
    SweepStatus.SUCCEEDED: frozenset(),
    SweepStatus.FAILED: frozenset(),
    SweepStatus.CANCELLED: frozenset(),
}


def check_sweep_transition(old: SweepStatus | str, new: SweepStatus | str) -> SweepStatus:
    """``new`` as a SweepStatus when ``old -> new`` is legal; raises :class:`IllegalTransition` otherwise."""
    old_s, new_s = SweepStatus(old), SweepStatus(new)
    if new_s not in SWEEP_TRANSITIONS[old_s]:
        raise IllegalTransition(old_s, new_s)
    return new_s


#: Job priorities: 0 lowest, 9 highest; a job submitted without one gets DEFAULT_PRIORITY.
MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY = 0, 9, 5
