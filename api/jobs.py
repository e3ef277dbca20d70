"""Jobs: submit, list, look at, cancel, rerun, delete; the metric history.

``POST /jobs`` validates the whole spec (schema, registry names, shape inference)
before anything is stored; every problem is a 4xx problem+json naming its field.
A job's model (download, predict) is ``api.models``; its event stream ``api.events``.
"""

from __future__ import annotations

import math

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from api import limits
from api.context import db, enqueue, settings
from api.documentation import (
    BAD_REQUEST,
    INVALID,
    JOB_CONFLICT,
    UNKNOWN_JOB,
    documented,
    json_content,
    ok,
    problem,
)
from api.lookups import caller, get_job
from api.model_cache import app_model_cache
from api.problems import Problem, error_item, validation_problem
from api.requests import (
    MAX_DB_INT,
    MAX_POINTS,
    IntQueryArg,
    plausible_id,
    read_json_body,
    refuse_unknown_query,
    request_hash,
)
from api.requests import unstorable_reason as _unstorable  # the name create_job reads
from api.serializers import job_answer, metric_point_answer
from dlcore.errors import ConfigError, SpecError
from dljobs import jobstore, queries
from dljobs.lifecycle import FINISHED, STATUSES, JobStatus
from dljobs.specs import JobRequest, prepare_job_request, request_of

bp = Blueprint("jobs", __name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_METRIC_PAGE = 5000

PAGE_LIMIT = IntQueryArg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
METRICS_SINCE = IntQueryArg("since", -1, -1, MAX_DB_INT)
METRICS_LIMIT = IntQueryArg("limit", 1000, 1, MAX_METRIC_PAGE)
METRIC_KINDS = ("epoch", "iteration")

#: The longest job name (the spec's ``name`` is 1 to 200 characters): a longer prefix matches nothing.
MAX_NAME = 200

#: ``GET /jobs``'s query parameters: the view refuses any other, the document lists these.
#: Blanks allowed around each status of ``?status=``.
STATUS_BLANKS = " \t"
_ONE_STATUS = "[ \t]*(" + "|".join(status.value for status in STATUSES) + ")?[ \t]*"
#: What ``?status=`` accepts: comma-separated statuses of dljobs.lifecycle, blanks around.
STATUS_LIST_PATTERN = f"^{_ONE_STATUS}(,{_ONE_STATUS})*$"

LIST_PARAMETERS = (
    {"name": "status", "in": "query",
     "schema": {"type": "string", "pattern": STATUS_LIST_PATTERN},
     "description": "comma-separated statuses (repeatable): jobs in any of them; one of "
                    + ", ".join(status.value for status in STATUSES)},
    {"name": "name", "in": "query", "schema": {"type": "string", "maxLength": MAX_NAME},
     "description": "jobs whose name starts with this, case-sensitive (an exact name matches "
                    "itself and the names it begins: ?name=digits gives digits-cnn and digits-mlp)"},
    PAGE_LIMIT.parameter(),
    {"name": "cursor", "in": "query", "schema": {"type": "string"},
     "description": "the next_cursor of the previous page"},
)

#: ``GET /jobs/<id>/metrics``'s query parameters.
METRICS_PARAMETERS = (
    METRICS_SINCE.parameter(), METRICS_LIMIT.parameter(),
    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(METRIC_KINDS)}},
    {**MAX_POINTS.parameter(),
     "description": "the whole history after since, downsampled to at most this many points of "
                    "each kind (each bucket's lowest and highest loss kept, so spikes and NaNs "
                    "stay); not with limit"},
)

#: What a cancel request changes; a job in any other status answers as it is.
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


# ---------------------------------------------------------------------------- helpers


def render_job(job, session=None) -> dict:
    return job_answer(job, job.diagnostics, jobstore.queue_position(session or db(), job))


def prepare_spec(body: dict) -> JobRequest:
    """Validate a job request as it came over HTTP (``dljobs.specs``, the one spec boundary).

    Returns the validated spec, its inferred summary and the typed references (an
    uploaded data set, a warm start from a finished job, max attempts); every problem
    is a 422 problem+json naming the field as the request wrote it.
    """
    try:
        prepared = prepare_job_request(db(), body, seen_by=caller(), settings=settings())
    except (SpecError, ConfigError) as exc:
        raise validation_problem(exc) from None
    infinite = non_finite_fields(prepared.spec.to_dict())
    if infinite:
        # JSON (and PostgreSQL's json type) has no NaN or Infinity: a spec holding one
        # cannot be stored, whatever the component's own bounds let through.
        raise validation_problem(SpecError([
            ConfigError(field, f"must be a finite number, got {value}")
            for field, value in infinite]))
    return prepared


def non_finite_fields(value) -> list[tuple[str, float]]:
    """``(dotted field, value)`` of every NaN or infinite float in a JSON-like value."""
    out = []
    stack = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            out.append((where or "body", item))
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return sorted(out)


def store_job(prepared: JobRequest, idempotency_key: str | None = None,
              body_hash: str | None = None, rerun_of: str | None = None, trial: dict | None = None):
    """Write the job row (queued) and send it to the workers.

    Returns ``(job, created)``; ``created`` is False when ``idempotency_key`` was
    already used (the existing job is returned and nothing is sent).  ``rerun_of`` is
    the id of the job a rerun repeats; ``trial`` the sweep columns a rerun of a trial keeps.
    """
    session = db()
    refs = prepared.refs
    job = jobstore.create_job(session, prepared.spec, prepared.summary, prepared.spec["name"],
                              idempotency_key, request_hash=body_hash,
                              max_attempts=refs.max_attempts, dataset_id=refs.dataset_id,
                              warm_start_job_id=refs.warm_start_job_id, rerun_of=rerun_of,
                              owner=caller().owner, priority=refs.priority, trial=trial,
                              sending=True, key_checked=True)
    if not getattr(job, "created_now", True):
        return job, False
    try:
        enqueue(job.id)
    except Exception:
        # The row is committed and queued: the reconciler sends it again later.
        current_app.logger.exception("enqueue of job %s failed; the reconciler will retry",
                                     job.id)
    return job, True


def _job_created(job, status: int = 201):
    resp = jsonify(render_job(job))
    resp.status_code = status
    resp.headers["Location"] = url_for("jobs.show_job", job_id=job.id)
    return resp


def _replay_or_conflict(existing, body_hash: str):
    if queries.get_job(db(), existing.id, seen_by=caller()) is None:
        # Keys are unique across owners: another owner's key is taken, and its job stays unnamed.
        raise Problem(409, "Idempotency-Key reused", "this Idempotency-Key is already used; "
                      "choose another (a random UUID)",
                      [error_item("Idempotency-Key", "already used by another request")])
    if existing.request_hash and existing.request_hash != body_hash:
        raise Problem(409, "Idempotency-Key reused",
                      "this Idempotency-Key was already used with a different body",
                      [error_item("Idempotency-Key", "already used for job "
                                  f"{existing.id} with a different request body")])
    resp = _job_created(existing, status=200)
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


# ---------------------------------------------------------------------------- jobs


@bp.post("/jobs")
@limits.limit_submissions
@documented("submitJob", "Submit a job; the body is the job spec itself",
            parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                         "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                    "pattern": "\\S"},
                         "description": "1-255 characters, not all blank (what the server "
                         "checks after stripping surrounding blanks)"}],
            body=json_content("JobSpec"),
            responses={"201": ok("Created and queued", "Job"),
                       "200": ok("Replayed: same Idempotency-Key and body", "Job"),
                       "400": BAD_REQUEST, "409": problem("Idempotency-Key reused"),
                       "413": problem("The JSON body is over DLJOBS_MAX_JSON_BYTES"),
                       "422": INVALID,
                       "429": problem("Over this token's DLJOBS_SUBMIT_RATE")})
def create_job():
    """Submit a job: the body is the job spec itself."""
    body = read_json_body()
    key = request.headers.get("Idempotency-Key")
    body_hash = request_hash(body)
    if key is not None:
        # The length is checked before stripping, as the document's maxLength counts it.
        if len(key) > 255 or not key.strip():
            raise Problem(400, "Bad Idempotency-Key", "Idempotency-Key must be 1-255 characters",
                          [error_item("Idempotency-Key", "must be 1-255 characters")])
        key = key.strip()
        if _unstorable(key):
            raise Problem(400, "Bad Idempotency-Key", f"Idempotency-Key {_unstorable(key)}",
                          [error_item("Idempotency-Key", _unstorable(key))])
        existing = jobstore.find_by_idempotency_key(db(), key)
        if existing is not None:
            return _replay_or_conflict(existing, body_hash)
    job, created = store_job(prepare_spec(body), key, body_hash)
    if not created:
        return _replay_or_conflict(job, body_hash)
    return _job_created(job)


def _statuses_arg() -> list[str]:
    """The ``?status=`` filter: comma-separated, repeatable, spaces allowed; a 400 if unknown."""
    # "queued, running" as well as "queued,running"; only spaces and tabs are blanks, as
    # the document's pattern (STATUS_LIST_PATTERN) says
    statuses = [s.strip(STATUS_BLANKS) for v in request.args.getlist("status")
                for s in v.split(",") if s.strip(STATUS_BLANKS)]
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise Problem(400, "Bad query parameter", f"unknown status {unknown[0]!r}",
                      [error_item("status", f"unknown status {unknown[0]!r} (allowed: "
                                  f"{', '.join(STATUSES)})")])
    return statuses


def _name_arg() -> str | None:
    """The ``?name=`` prefix, or None when absent or empty; a 400 when given twice or unstorable."""
    values = request.args.getlist("name")
    if len(values) > 1:
        raise Problem(400, "Bad query parameter", "name is given more than once",
                      [error_item("name", "give one name prefix")])
    name = values[0] if values else ""
    if not name:
        return None
    if len(name) > MAX_NAME:
        message = f"at most {MAX_NAME} characters (a job name's limit), got {len(name)}"
        raise Problem(400, "Bad query parameter", f"name: {message}", [error_item("name", message)])
    reason = _unstorable(name)
    if reason:
        raise Problem(400, "Bad query parameter", f"name {reason}", [error_item("name", reason)])
    return name


def _cursor_arg() -> queries.JobCursor | None:
    """The ``?cursor=`` a previous page answered, or None; a 400 for any other string."""
    cursor = request.args.get("cursor")
    if not cursor:
        return None
    try:
        decoded = queries.JobCursor.decode(cursor)
    except ValueError:
        decoded = None
    if decoded is None or not plausible_id(decoded.job_id):
        raise Problem(400, "Bad cursor", "cursor is not one answered by GET /jobs",
                      [error_item("cursor", "not a cursor answered by this API")])
    return decoded


@bp.get("/jobs")
@documented("listJobs", "Jobs, newest first", parameters=LIST_PARAMETERS,
            responses={"200": ok("A page of jobs", "JobList"), "400": BAD_REQUEST})
def list_jobs():
    """Jobs, newest first: ``?status=queued,running``, ``?name=<prefix>``, ``?limit=``, ``?cursor=``."""
    refuse_unknown_query(LIST_PARAMETERS)
    limit = PAGE_LIMIT.read()
    statuses = _statuses_arg()
    page = queries.job_page(db(), limit, statuses, _cursor_arg(), name_prefix=_name_arg(),
                            seen_by=caller())
    queued = [j.id for j in page.jobs if j.status == JobStatus.QUEUED]
    positions = jobstore.queue_positions(db(), queued)
    return jsonify({
        "jobs": [job_answer(j, j.diagnostics, positions.get(j.id)) for j in page.jobs],
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
    })


@bp.get("/jobs/<job_id>")
@documented("getJob", "One job", responses={"200": ok("The job", "Job"), "404": UNKNOWN_JOB})
def show_job(job_id: str):
    return jsonify(render_job(get_job(job_id)))


@bp.delete("/jobs/<job_id>")
@documented("deleteJob", "Delete a finished job and its artifacts",
            responses={"204": {"description": "Deleted"}, "404": UNKNOWN_JOB,
                       "409": JOB_CONFLICT})
def delete_job(job_id: str):
    """Delete a finished job with its history and artifacts (409 while it may still run)."""
    job = get_job(job_id)
    if job.status not in FINISHED:
        raise Problem(409, "Job still active", f"job {job_id} is {job.status}; cancel it first",
                      [error_item("job_id", f"job is {job.status}; only finished jobs can be "
                                  "deleted")])
    starting = queries.warm_started_from(db(), job_id)
    if starting:
        names = ", ".join(starting[:5])
        raise Problem(409, "Model in use", f"job {job_id}'s model is the warm start of active "
                      f"job(s) {names}; wait for them or cancel them first",
                      [error_item("job_id", f"its model starts active job(s) {names}")])
    if not jobstore.delete_job(db(), job_id):
        raise Problem(409, "Job still active", f"job {job_id} could not be deleted",
                      [error_item("job_id", "job is no longer finished")])
    app_model_cache().drop(job_id)
    return Response(status=204)


@bp.post("/jobs/<job_id>/cancel")
@documented("cancelJob", "Cancel (idempotent)",
            responses={"200": ok("The job", "Job"), "404": UNKNOWN_JOB})
def cancel_job(job_id: str):
    """Ask a job to stop: a queued job never runs, a running one stops cooperatively."""
    job = get_job(job_id)
    if job.status in CANCELLABLE:
        job = jobstore.request_cancel(db(), job_id)
    return jsonify(render_job(job))


@bp.post("/jobs/<job_id>/rerun")
@documented("rerunJob", "A new job with the same spec",
            responses={"201": ok("The new job", "Job"), "404": UNKNOWN_JOB, "422": INVALID})
def rerun_job(job_id: str):
    """A new job with the same spec (validated again: the plugins may have changed).

    A sweep's trial is rerun into its sweep: the new job is the same trial (its leaderboard
    row from now on), trained to its spec's end.
    """
    job = get_job(job_id)
    trial = None
    if job.sweep_id is not None:
        trial = {"sweep_id": job.sweep_id, "trial_index": job.trial_index, "trial_params": job.trial_params}
    job, _ = store_job(prepare_spec(request_of(job)), rerun_of=job.id, trial=trial)
    return _job_created(job)


@bp.get("/jobs/<job_id>/metrics")
@documented("jobMetrics", "Metric history, incremental", parameters=METRICS_PARAMETERS,
            responses={"200": ok("Points after since", "MetricPage"), "400": BAD_REQUEST,
                       "404": UNKNOWN_JOB})
def job_metrics(job_id: str):
    """Metric history after ``?since=<step>``, ``?limit=`` points, ``?kind=epoch|iteration``."""
    get_job(job_id)
    refuse_unknown_query(METRICS_PARAMETERS)
    since = METRICS_SINCE.read()
    limit = METRICS_LIMIT.read()
    kind = request.args.get("kind")
    if kind not in (None, "", *METRIC_KINDS):
        raise Problem(400, "Bad query parameter", "kind must be epoch or iteration",
                      [error_item("kind", f"must be 'epoch' or 'iteration', got {kind!r}")])
    max_points = MAX_POINTS.read()
    if max_points is not None:
        return _downsampled_metrics(job_id, since, max_points, kind)
    page = queries.metric_page(db(), job_id, since, limit, kind)
    return jsonify({
        "points": [metric_point_answer(p) for p in page.points],
        "next_since": page.next_since,
        "has_more": page.has_more,
    })


def _downsampled_metrics(job_id: str, since: int, max_points: int, kind: str | None):
    """The answer of ``?max_points=``: one page holding the whole (downsampled) history."""
    if request.args.get("limit"):
        message = "limit pages the stored points; max_points answers the whole history " \
                  "downsampled: give one of them"
        raise Problem(400, "Bad query parameter", message, [error_item("max_points", message)])
    points = queries.downsampled_metric_points(db(), job_id, since, max_points, kind or None)
    return jsonify({
        "points": [metric_point_answer(p) for p in points],
        "next_since": points[-1].step if points else (since if since >= 0 else None),
        "has_more": False,
    })
