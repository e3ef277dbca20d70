"""The reads the HTTP API makes, and the writes that are not a job's (a dataset's upload and deletion).

The API's views call these and hold no SQLAlchemy of their own; every status change
of a job goes through :mod:`dljobs.jobstore` instead.  Nothing here commits except
:func:`add_dataset` and :func:`delete_dataset`.

Owners: every read of a job or dataset a caller names takes ``seen_by``, the caller's
:class:`dljobs.tokens.Principal`; another owner's row is answered as absent (None),
exactly like a missing one, so the API says 404 and never 403.  An admin sees all;
``seen_by=None`` is the service itself (workers, the CLI), which also sees all.
This module is the one place that filter is written.

Jobs are listed newest first and paged by a cursor, the ``(created_at, id)`` of the
last job of the previous page, so a page never repeats or skips a job when new jobs
arrive between two requests.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np
from sqlalchemy import and_, case, delete, exists, func, or_, select, text
from sqlalchemy.orm import Session, defer, selectinload
from sqlalchemy.sql.expression import cast, literal_column
from sqlalchemy.types import REAL, Text

from dljobs import jobstore
from dljobs.db.models import Dataset, Job, JobEvent, JobLog, MetricPoint, Sweep
from dljobs.downsample import min_max_indices
from dljobs.lifecycle import ACTIVE, FINISHED, LIVE, SWEEP_FINISHED, JobStatus
from dljobs.tokens import Principal


def _owned(column, seen_by: Principal | None):
    """The WHERE clause of the rows ``seen_by`` may see (None: no restriction)."""
    if seen_by is None or seen_by.admin:
        return None
    return column == seen_by.owner


def _visible(row, seen_by: Principal | None):
    """``row`` if ``seen_by`` may see it, else None (another owner's row is "not found")."""
    if row is None or seen_by is None or seen_by.admin:
        return row
    return row if row.owner == seen_by.owner else None

# ---------------------------------------------------------------------------- jobs


def get_job(session: Session, job_id: str, seen_by: Principal | None = None) -> Job | None:
    """The job row with id ``job_id``, or None (also when it is another owner's)."""
    return _visible(session.get(Job, job_id), seen_by)


def job_status(session: Session, job_id: str) -> JobStatus | None:
    """The status of job ``job_id`` (None once it is deleted), read without loading the row."""
    status = session.execute(select(Job.status).where(Job.id == job_id)).scalar()
    return None if status is None else JobStatus(status)


class JobCursor(NamedTuple):
    """Where a page of jobs ended: the ``created_at`` and ``id`` of its last job."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        """The cursor as the API answers it: URL-safe base64, no padding."""
        raw = f"{self.created_at.isoformat()}|{self.job_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> JobCursor:
        """The cursor ``encode`` answered; ValueError for any other string.

        Bad base64, bad UTF-8, no ``|`` and a bad date are all ValueErrors.  The id is
        not checked here: the caller decides which ids are plausible.
        """
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        return cls(datetime.fromisoformat(created), job_id)


class JobPage(NamedTuple):
    jobs: list[Job]
    next_cursor: JobCursor | None  # None on the last page


def job_page(
    session: Session,
    limit: int,
    statuses: list[str] | None = None,
    after: JobCursor | None = None,
    name_prefix: str | None = None,
    seen_by: Principal | None = None,
) -> JobPage:
    """Up to ``limit`` jobs, newest first, with their diagnostics loaded.

    Inputs:
    - limit: the page size (at least 1).
    - statuses: only jobs in one of these (all jobs when empty or None).
    - after: the cursor of the previous page; this page starts after it.
    - name_prefix: only jobs whose name starts with it, case-sensitive (all when empty or None).
    - seen_by: only the jobs this caller may see (its owner's; all for an admin).
    Returns: the jobs and the cursor of the next page (None when there is none).
    """
    query = (
        select(Job)
        .options(selectinload(Job.diagnostics))
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit + 1)  # one more tells whether a next page exists
    )
    owned = _owned(Job.owner, seen_by)
    if owned is not None:
        query = query.where(owned)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if name_prefix:
        # substr, not LIKE: SQLite's LIKE ignores case and both give % and _ a meaning.
        query = query.where(func.substr(Job.name, 1, len(name_prefix)) == name_prefix)
    if after is not None:
        query = query.where(
            or_(
                Job.created_at < after.created_at,
                and_(Job.created_at == after.created_at, Job.id < after.job_id),
            )
        )
    jobs = list(session.execute(query).scalars())
    next_cursor = None
    if len(jobs) > limit:
        last = jobs[limit - 1]
        next_cursor = JobCursor(last.created_at, last.id)
    return JobPage(jobs[:limit], next_cursor)


def warm_started_from(session: Session, job_id: str) -> list[str]:
    """Ids of the active jobs, oldest first, whose warm start is ``job_id``'s model.

    They (and their resumed attempts after a lost worker) read its model, so it must
    outlive them.
    """
    return list(
        session.scalars(
            select(Job.id)
            .where(Job.warm_start_job_id == job_id, Job.status.in_(ACTIVE))
            .order_by(Job.created_at)
        )
    )


# ---------------------------------------------------------------------------- metrics


class MetricPage(NamedTuple):
    points: list[MetricPoint]
    next_since: int | None  # pass as ``since`` for the next page; None while there is none
    has_more: bool


def metric_page(
    session: Session, job_id: str, since: int, limit: int, kind: str | None = None
) -> MetricPage:
    """Up to ``limit`` points of a job's metric history with ``step > since``, oldest first.

    Inputs:
    - since: the last step the caller has (-1 for none).
    - kind: ``epoch`` or ``iteration`` points only; both when None or empty.
    Returns: the points, the ``since`` of the next page (the last step here, or ``since``
    itself when no point came and it named one) and whether more points are stored.
    """
    points = jobstore.metric_points(session, job_id, since, limit + 1, kind)
    has_more = len(points) > limit
    points = points[:limit]
    if points:
        next_since = points[-1].step
    else:
        next_since = since if since >= 0 else None
    return MetricPage(points, next_since, has_more)


#: The series whose minimum and maximum per bucket a downsampled history keeps, by kind.
DOWNSAMPLED_SERIES = {"iteration": ("loss",), "epoch": ("train_loss", "val_loss")}


def downsampled_metric_points(
    session: Session, job_id: str, since: int, max_points: int, kind: str | None = None
) -> list[MetricPoint]:
    """A job's metric history with ``step > since``, at most ``max_points`` points of each kind.

    Each kind is downsampled on its own, keeping every bucket's lowest and highest value
    so spikes and NaNs stay visible.  Iteration points (a million in a long run) are
    bucketed by the database over the typed ``loss`` column (:func:`_bucketed_loss_steps`:
    only about ``max_points`` steps cross to Python); epoch points (a few hundred, two
    series) go through :func:`dljobs.downsample.min_max_indices`.  The kept points are
    then loaded whole by step.
    Returns: the kept points, oldest first (all of them when there are few enough).
    """
    kept: list[int] = []
    for point_kind, series in DOWNSAMPLED_SERIES.items():
        if kind and kind != point_kind:
            continue
        if point_kind == "iteration":
            kept.extend(_bucketed_loss_steps(session, job_id, since, max_points))
            continue
        steps, values = _metric_columns(session, job_id, since, point_kind, series)
        if len(steps):
            kept.extend(steps[min_max_indices(values, max_points)].tolist())
    points: list[MetricPoint] = []
    for start in range(0, len(kept), STEPS_PER_QUERY):
        points.extend(session.scalars(
            select(MetricPoint).where(MetricPoint.job_id == job_id,
                                      MetricPoint.step.in_(kept[start:start + STEPS_PER_QUERY]))
        ))
    return sorted(points, key=lambda point: point.step)


#: Per bucket ``i`` of steps ``[lo + i w, lo + (i + 1) w)``: the step of its lowest loss and of
#: its highest (a missing loss, null, counts as the highest).  Each bucket is one range
#: scan of ``ix_metric_points_job_id_kind_step_loss`` (with the table's pages all-visible,
#: the index alone answers it): nothing is sorted or grouped, whatever the planner's
#: statistics say (a GROUP BY over the bucket sorted a million rows on disk when they
#: were missing), and only two steps per bucket leave the database.
#: PostgreSQL: ``min`` of ``ARRAY[loss, step]`` carries the step along (a null element
#: sorts last, a NaN above every number; ``-step`` makes the first of equal maxima win).
#: SQLite: an aggregate's bare column comes from the row of its ``min()`` or ``max()``.
BUCKET_EXTREMES = {
    "sqlite": """WITH RECURSIVE bucket(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM bucket WHERE i + 1 < :buckets)
        SELECT (SELECT step FROM (SELECT step, min(coalesce(loss, 9e999)) FROM metric_points
                  WHERE job_id = :job AND kind = 'iteration' AND step >= :lo + i * :width
                    AND step < :lo + (i + 1) * :width)),
               (SELECT step FROM (SELECT step, max(coalesce(loss, 9e999)) FROM metric_points
                  WHERE job_id = :job AND kind = 'iteration' AND step >= :lo + i * :width
                    AND step < :lo + (i + 1) * :width))
        FROM bucket""",
    "postgresql": """SELECT (extremes.lowest)[2], (extremes.highest)[2]
        FROM generate_series(0, :buckets - 1) AS bucket(i)
        CROSS JOIN LATERAL (
            SELECT min(ARRAY[loss, step]) AS lowest, max(ARRAY[coalesce(loss, 'NaN'), -step]) AS highest
            FROM metric_points WHERE job_id = :job AND kind = 'iteration'
              AND step >= :lo + bucket.i * :width AND step < :lo + (bucket.i + 1) * :width) AS extremes""",
}


def _bucketed_loss_steps(session: Session, job_id: str, since: int, max_points: int) -> list[int]:
    """The steps of the iteration points to keep: all when at most ``max_points``, else the
    first, the last, and each of ``(max_points - 2) // 2`` equal step ranges' lowest and
    highest loss (a null loss, stored for NaN or infinity, counts as the highest)."""
    def iteration_steps(since: int):
        return select(MetricPoint.step).where(
            MetricPoint.job_id == job_id, MetricPoint.kind == "iteration", MetricPoint.step > since)

    # two index seeks: one min() or max() alone is answered from the index's ends
    lo = session.scalar(select(func.min(iteration_steps(since).subquery().c.step)))
    hi = session.scalar(select(func.max(iteration_steps(since).subquery().c.step)))
    if lo is None:
        return []
    # steps are unique within a job, so a narrow range is few points; else count, but
    # never past max_points + 1
    if hi - lo + 1 <= max_points or session.scalar(select(func.count()).select_from(
            iteration_steps(since).limit(max_points + 1).subquery())) <= max_points:
        return list(session.scalars(iteration_steps(since)))
    buckets = max(1, (max_points - 2) // 2)
    width = (hi - lo) // buckets + 1
    rows = session.execute(text(BUCKET_EXTREMES[session.get_bind().dialect.name]),
                           {"job": job_id, "lo": lo, "width": width, "buckets": buckets}).all()
    kept = {lo, hi}
    kept.update(abs(int(step)) for row in rows for step in row if step is not None)
    return sorted(kept)


def _metric_columns(
    session: Session, job_id: str, since: int, kind: str, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps (N,), values (N, S))`` of a job's ``kind`` points with ``step > since``, by step.

    The database joins each column into one comma-separated text (PostgreSQL's
    ``string_agg``, SQLite's ``group_concat``) that NumPy parses in C: a million points
    cross to Python as a few strings, not a million rows (on PostgreSQL the values travel
    as ``real``, enough to rank them; the kept points are read back whole).  A value that
    is missing or not finite (stored as null) is NaN.
    """
    postgres = session.get_bind().dialect.name == "postgresql"

    def joined(column):
        text_of = cast(column, Text)
        if postgres:
            return func.string_agg(text_of, literal_column("','"))
        return func.group_concat(text_of, ",")

    def ranked(name: str):
        value = MetricPoint.values[name].as_float()
        return func.coalesce(cast(cast(value, REAL), Text) if postgres else cast(value, Text), "nan")

    # one aggregate pass: every column sees the rows in the same order, whatever it is
    row = session.connection().execute(
        select(joined(MetricPoint.step), *(func.coalesce(joined(ranked(name)), "") for name in names))
        .where(MetricPoint.job_id == job_id, MetricPoint.step > since, MetricPoint.kind == kind)
    ).one()
    if not row[0]:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(names)))
    steps = np.fromstring(row[0], dtype=np.int64, sep=",")
    values = np.stack([np.fromstring(column, sep=",") for column in row[1:]], axis=1)
    order = np.argsort(steps, kind="stable")  # an aggregate keeps no order of its own
    return steps[order], values[order]


#: Steps named in one ``IN (...)`` (SQLite allows 32,766 bound parameters, PostgreSQL 65,535).
STEPS_PER_QUERY = 5000


# ---------------------------------------------------------------------------- datasets


def get_dataset(session: Session, dataset_id: str, seen_by: Principal | None = None) -> Dataset | None:
    """The dataset row (its blob not loaded), or None (also when it is another owner's)."""
    return _visible(session.get(Dataset, dataset_id), seen_by)


def datasets(session: Session, seen_by: Principal | None = None) -> list[Dataset]:
    """Every uploaded dataset ``seen_by`` may see, newest first, without loading the blobs."""
    query = select(Dataset).options(defer(Dataset.blob)).order_by(
        Dataset.created_at.desc(), Dataset.id
    )
    owned = _owned(Dataset.owner, seen_by)
    if owned is not None:
        query = query.where(owned)
    return list(session.execute(query).scalars())


def dataset_with_sha256(session: Session, sha256: str, seen_by: Principal | None = None) -> Dataset | None:
    """The oldest dataset ``seen_by`` may see whose bytes have this SHA-256 (blob not loaded), or None.

    An upload of bytes another owner stored makes a new row: the answer would otherwise
    tell that someone has these bytes, and name a dataset the uploader cannot use.
    """
    query = select(Dataset).options(defer(Dataset.blob)).where(Dataset.sha256 == sha256)
    owned = _owned(Dataset.owner, seen_by)
    if owned is not None:
        query = query.where(owned)
    return session.scalars(query.order_by(Dataset.created_at, Dataset.id).limit(1)).first()


def _active_on(dataset_id: str):
    """The active jobs on dataset ``dataset_id`` (a WHERE clause)."""
    return and_(Job.dataset_id == dataset_id, Job.status.in_(ACTIVE))


def jobs_using_dataset(session: Session, dataset_id: str) -> list[str]:
    """Ids of the active jobs, oldest first, that train on ``dataset_id``.

    Queued ones will read it, running ones (and their resumed attempts after a lost
    worker) read it again, so it must outlive them.
    """
    return list(session.scalars(select(Job.id).where(_active_on(dataset_id)).order_by(Job.created_at)))


def delete_dataset(session: Session, dataset_id: str) -> bool:
    """Delete the dataset unless an active job uses it, in one statement, and commit.

    Returns True when it was deleted; False when it is absent or an active job trains
    on it (the check and the delete are one statement, so a job that became active
    since the caller looked keeps its data).  Finished jobs keep their ``dataset_id``;
    a rerun of one is refused as naming an unknown dataset.
    """
    result = session.execute(
        delete(Dataset)
        .where(Dataset.id == dataset_id, ~exists().where(_active_on(dataset_id)))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def add_dataset(
    session: Session,
    blob: bytes,
    name: str | None,
    sample_shape: list[int],
    num_classes: int,
    n_samples: int,
    sha256: str,
    owner: str | None = None,
) -> Dataset:
    """Store an uploaded ``.npz`` (already checked) for ``owner`` and commit; returns the new row."""
    row = Dataset(
        name=name,
        sample_shape=sample_shape,
        num_classes=num_classes,
        n_samples=n_samples,
        size_bytes=len(blob),
        sha256=sha256,
        blob=blob,
        owner=owner,
    )
    session.add(row)
    session.commit()
    return row


# ---------------------------------------------------------------------------- health


def ping(session: Session) -> None:
    """One round trip to the database; raises when it does not answer."""
    session.execute(text("SELECT 1"))


# ---------------------------------------------------------------------------- event streams


class EventRow(NamedTuple):
    """One row of ``job_events`` as a stream sends it (no ORM object: it outlives the session)."""

    id: int
    job_id: str
    type: str
    data: dict


def job_statuses(session: Session, job_ids: Iterable[str]) -> dict[str, JobStatus]:
    """The status of each of ``job_ids`` that still exists (a deleted job is absent)."""
    ids = list(job_ids)
    if not ids:
        return {}
    rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(ids)))
    return {job_id: JobStatus(status) for job_id, status in rows}


def events_after(session: Session, after_by_job: dict[str, int], limit: int) -> list[EventRow]:
    """The events of several jobs, each after its own event id, oldest first, at most ``limit``.

    One query for every followed job (``api.event_poller``): an ``OR`` of
    ``(job_id = j AND id > after_j)``, each served by the ``(job_id, id)`` index.
    """
    if not after_by_job:
        return []
    clause = or_(*(and_(JobEvent.job_id == job_id, JobEvent.id > after)
                   for job_id, after in after_by_job.items()))
    stmt = (select(JobEvent.id, JobEvent.job_id, JobEvent.type, JobEvent.data)
            .where(clause).order_by(JobEvent.id).limit(limit))
    return [EventRow(*row) for row in session.execute(stmt)]


# ---------------------------------------------------------------------------- job logs


def job_log_page(session: Session, job_id: str, after: int, limit: int) -> list[JobLog]:
    """Up to ``limit`` log lines of job ``job_id`` with ``id > after``, oldest first."""
    stmt = (select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after)
            .order_by(JobLog.id).limit(limit))
    return list(session.scalars(stmt))


# ---------------------------------------------------------------------------- service metrics


class DurationBuckets(NamedTuple):
    """Finished jobs of one status: how many took at most each bound, the count and the sum (s)."""

    status: JobStatus
    at_most: list[int]  # one count per bound, cumulative (Prometheus' ``le``)
    count: int
    total_s: float


def jobs_by_status(session: Session) -> dict[JobStatus, int]:
    """How many jobs are in each status (every status, zero included)."""
    counts = dict.fromkeys(JobStatus, 0)
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[JobStatus(status)] = int(count)
    return counts


def _seconds_between(session: Session, start, end):
    """``end - start`` in seconds, as this database computes it."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def job_durations(session: Session, bounds: Iterable[float]) -> list[DurationBuckets]:
    """Training time (``started_at`` to ``finished_at``) of finished jobs, bucketed by ``bounds``.

    One aggregate query, grouped by status and bucket (the first bound a duration fits
    under), computed by the database: no job row is loaded.  On PostgreSQL the buckets
    compare intervals, 2.6 times cheaper at 100,000 jobs than numeric seconds (bench/joblist.py).
    """
    bounds = list(bounds)
    seconds = _seconds_between(session, Job.started_at, Job.finished_at)
    if session.get_bind().dialect.name == "postgresql":
        took = Job.finished_at - Job.started_at
        bucket = case(*((took <= timedelta(seconds=b), i) for i, b in enumerate(bounds)), else_=len(bounds))
    else:
        bucket = case(*((seconds <= b, i) for i, b in enumerate(bounds)), else_=len(bounds))
    stmt = (select(Job.status, bucket, func.count(), func.coalesce(func.sum(seconds), 0.0))
            .where(Job.status.in_(FINISHED), Job.started_at.is_not(None), Job.finished_at.is_not(None))
            .group_by(Job.status, bucket))
    per_status: dict[JobStatus, tuple[list[int], list[float]]] = {}
    for status, index, count, total in session.execute(stmt):
        counts, sums = per_status.setdefault(JobStatus(status), ([0] * (len(bounds) + 1), [0.0]))
        counts[int(index)] += int(count)
        sums[0] += float(total)
    out = []
    for status, (counts, sums) in per_status.items():
        at_most = [sum(counts[: i + 1]) for i in range(len(bounds))]  # cumulative, as ``le`` is
        out.append(DurationBuckets(status, at_most, sum(counts), sums[0]))
    return out


def live_job_progress(session: Session) -> list[tuple[str, dict]]:
    """``(job id, progress)`` of every job a worker is training (progress as last written)."""
    stmt = select(Job.id, Job.progress).where(Job.status.in_(LIVE), Job.progress.is_not(None))
    return [(job_id, progress) for job_id, progress in session.execute(stmt) if isinstance(progress, dict)]


# ---------------------------------------------------------------------------- sweeps


def get_sweep(session: Session, sweep_id: str, seen_by: Principal | None = None):
    """The sweep row with id ``sweep_id``, or None (also when it is another owner's)."""
    return _visible(session.get(Sweep, sweep_id), seen_by)


def sweeps(session: Session, seen_by: Principal | None = None, limit: int = 100) -> list:
    """The sweeps ``seen_by`` may see, newest first."""
    stmt = select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit)
    owned = _owned(Sweep.owner, seen_by)
    if owned is not None:
        stmt = stmt.where(owned)
    return list(session.scalars(stmt))


def sweep_trials(session: Session, sweep_id: str) -> list[Job]:
    """Every job of a sweep (reruns too), by trial index then age."""
    stmt = select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial_index, Job.created_at, Job.id)
    return list(session.scalars(stmt))


def unfinished_sweep_ids(session: Session) -> list[str]:
    """The sweeps a scheduler tick looks at: not finished yet, oldest first."""
    stmt = select(Sweep.id).where(Sweep.status.not_in(list(SWEEP_FINISHED))).order_by(Sweep.created_at)
    return list(session.scalars(stmt))
