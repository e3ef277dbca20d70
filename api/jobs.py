"""Jobs: submit, list, look at, cancel, rerun, delete; metrics, model and predictions.

``POST /jobs`` validates the whole spec (schema, registry names, shape inference)
before anything is stored; every problem is a 4xx problem+json naming its field.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json as jsonlib
import math
import threading
from collections import OrderedDict
from datetime import datetime

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from api.context import db, enqueue
from api.problems import Problem, error_item, validation_problem
from api.serializers import FINISHED, job_answer, metric_point_answer
from dlcore.errors import ConfigError, SpecError
from dljobs import jobstore
from dljobs.db.models import Job
from dljobs.lifecycle import STATUSES as JOB_STATUSES
from dljobs.lifecycle import has_model
from dljobs.specs import JobRequest, prepare_job_request, request_of

bp = Blueprint("jobs", __name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_METRIC_PAGE = 5000
MAX_PREDICT_SAMPLES = 10_000
#: The largest value of an INTEGER column (PostgreSQL's is 32-bit): a larger query
#: parameter would be a database error, not an empty answer.
MAX_DB_INT = 2**31 - 1


# ---------------------------------------------------------------------------- helpers


#: Deepest nesting of arrays and objects a JSON body may have (a spec needs about 6,
#: predict inputs 5); deeper bodies would exhaust the parser's recursion.
MAX_JSON_DEPTH = 64


def read_json_body(expect_object: bool = True):
    """The request's JSON body; malformed JSON is a 400 naming ``body``.

    Also a 400, naming the place: nesting deeper than ``MAX_JSON_DEPTH``, and strings
    (keys or values) holding NUL or unpaired surrogates, which no database text column
    can store (PostgreSQL refuses NUL, UTF-8 has no surrogates).
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise Problem(400, "Malformed request", "the request body is empty; send a JSON object",
                      [error_item("body", "expected a JSON object, got an empty body")])
    try:
        body = jsonlib.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "Malformed JSON", f"the request body is not valid JSON: {exc}",
                      [error_item("body", f"invalid JSON: {exc}")]) from None
    except RecursionError:
        message = f"nested deeper than {MAX_JSON_DEPTH} levels"
        raise Problem(400, "Malformed JSON", f"the request body is {message}",
                      [error_item("body", message)]) from None
    if expect_object and not isinstance(body, dict):
        raise Problem(400, "Malformed request", "the request body must be a JSON object",
                      [error_item("body", f"expected a JSON object, got {type(body).__name__}")])
    check_json_strings(body)
    return body


def _unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored as database text, or None."""
    if "\x00" in text:
        return "must not contain the NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


def check_json_strings(body, root: str = "") -> None:
    """A 400 naming the first place in ``body`` nested too deeply or with an unstorable string.

    Walks the parsed body without recursion (a body may be as deep as the parser allows).
    """
    def refuse(where: str, reason: str, title: str = "Malformed request"):
        where = where or "body"
        return Problem(400, title, f"{where}: {reason}", [error_item(where, reason)])

    if isinstance(body, str) and _unstorable(body):
        raise refuse(root, _unstorable(body))
    stack = [(body, root, 0)]
    while stack:
        value, where, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise refuse(where, f"nested deeper than {MAX_JSON_DEPTH} levels", "Malformed JSON")
        if isinstance(value, dict):
            items = []
            for key, item in value.items():
                if _unstorable(key):
                    raise refuse(where, f"a key {_unstorable(key)}")
                items.append((f"{where}.{key}" if where else key, item))
        else:
            items = ((f"{where}[{index}]", item) for index, item in enumerate(value))
        for path, item in items:
            if isinstance(item, str):
                reason = _unstorable(item)
                if reason:
                    raise refuse(path, reason)
            elif isinstance(item, (dict, list)):
                stack.append((item, path, depth + 1))


def get_job(job_id: str):
    """The job row, or a 404 problem."""
    job = db().get(Job, job_id) if plausible_id(job_id) else None
    if job is None:
        raise Problem(404, "Job not found", f"there is no job {job_id!r}",
                      [error_item("job_id", f"unknown job {job_id!r}")])
    return job


_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def plausible_id(value) -> bool:
    """Whether ``value`` may be a stored id (1-64 letters, digits, ``_``, ``-``).

    Anything else is answered "not found" without a query: PostgreSQL refuses NUL in
    a parameter, and no id holds other characters.
    """
    return isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _ID_CHARS


def render_job(job, session=None) -> dict:
    return job_answer(job, job.diagnostics, jobstore.queue_position(session or db(), job))


def request_hash(body) -> str:
    canonical = jsonlib.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def prepare_spec(body: dict) -> JobRequest:
    """Validate a job request as it came over HTTP (``dljobs.specs``, the one spec boundary).

    Returns the validated spec, its inferred summary and the typed references (an
    uploaded data set, a warm start from a finished job, max attempts); every problem
    is a 422 problem+json naming the field as the request wrote it.
    """
    try:
        prepared = prepare_job_request(db(), body)
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
              body_hash: str | None = None):
    """Write the job row (queued) and send it to the workers.

    Returns ``(job, created)``; ``created`` is False when ``idempotency_key`` was
    already used (the existing job is returned and nothing is sent).
    """
    session = db()
    refs = prepared.refs
    job = jobstore.create_job(session, prepared.spec, prepared.summary, prepared.spec["name"],
                              idempotency_key, request_hash=body_hash,
                              max_attempts=refs.max_attempts, dataset_id=refs.dataset_id,
                              warm_start_job_id=refs.warm_start_job_id)
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
def create_job():
    """Submit a job: the body is the job spec itself."""
    body = read_json_body()
    key = request.headers.get("Idempotency-Key")
    body_hash = request_hash(body)
    if key is not None:
        key = key.strip()
        if not key or len(key) > 255:
            raise Problem(400, "Bad Idempotency-Key", "Idempotency-Key must be 1-255 characters",
                          [error_item("Idempotency-Key", "must be 1-255 characters")])
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


def _encode_cursor(job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        if not plausible_id(job_id):
            raise ValueError(job_id)
        return datetime.fromisoformat(created), job_id
    except ValueError:  # bad base64, bad UTF-8, no "|", bad date: all ValueErrors
        raise Problem(400, "Bad cursor", "cursor is not one answered by GET /jobs",
                      [error_item("cursor", "not a cursor answered by this API")]) from None


def int_arg(name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    """An integer query parameter within [low, high], or a 400 naming it."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Problem(400, "Bad query parameter", f"{name} must be an integer",
                      [error_item(name, f"must be an integer, got {value!r}")]) from None
    if number < low or (high is not None and number > high):
        rule = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise Problem(400, "Bad query parameter", f"{name} must be {rule}",
                      [error_item(name, f"must be {rule}, got {number}")])
    return number


@bp.get("/jobs")
def list_jobs():
    """Jobs, newest first: ``?status=queued,running``, ``?limit=``, ``?cursor=``."""
    limit = int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    statuses = [s.strip() for v in request.args.getlist("status") for s in v.split(",")
                if s.strip()]  # "queued, running" as well as "queued,running"
    unknown = [s for s in statuses if s not in JOB_STATUSES]
    if unknown:
        raise Problem(400, "Bad query parameter", f"unknown status {unknown[0]!r}",
                      [error_item("status", f"unknown status {unknown[0]!r} (allowed: "
                                  f"{', '.join(JOB_STATUSES)})")])
    query = (select(Job).options(selectinload(Job.diagnostics))
             .order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    if statuses:
        query = query.where(Job.status.in_(statuses))
    cursor = request.args.get("cursor")
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created,
                                and_(Job.created_at == created, Job.id < job_id)))
    session = db()
    jobs = list(session.execute(query).scalars())
    next_cursor = _encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    jobs = jobs[:limit]
    positions = jobstore.queue_positions(session, [j.id for j in jobs if j.status == "queued"])
    return jsonify({
        "jobs": [job_answer(j, j.diagnostics, positions.get(j.id)) for j in jobs],
        "next_cursor": next_cursor,
    })


@bp.get("/jobs/<job_id>")
def show_job(job_id: str):
    return jsonify(render_job(get_job(job_id)))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    """Delete a finished job with its history and artifacts (409 while it may still run)."""
    job = get_job(job_id)
    if job.status not in FINISHED:
        raise Problem(409, "Job still active", f"job {job_id} is {job.status}; cancel it first",
                      [error_item("job_id", f"job is {job.status}; only finished jobs can be "
                                  "deleted")])
    starting = _warm_started_from(job_id)
    if starting:
        names = ", ".join(starting[:5])
        raise Problem(409, "Model in use", f"job {job_id}'s model is the warm start of active "
                      f"job(s) {names}; wait for them or cancel them first",
                      [error_item("job_id", f"its model starts active job(s) {names}")])
    if not jobstore.delete_job(db(), job_id):
        raise Problem(409, "Job still active", f"job {job_id} could not be deleted",
                      [error_item("job_id", "job is no longer finished")])
    _model_cache.drop(job_id)
    return Response(status=204)


def _warm_started_from(job_id: str) -> list[str]:
    """Active jobs warm-started from ``job_id``'s model: it must outlive them."""
    return jobstore.jobs_warm_started_from(db(), job_id)


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """Ask a job to stop: a queued job never runs, a running one stops cooperatively."""
    job = get_job(job_id)
    if job.status in ("queued", "running"):
        job = jobstore.request_cancel(db(), job_id)
    return jsonify(render_job(job))


@bp.post("/jobs/<job_id>/rerun")
def rerun_job(job_id: str):
    """A new job with the same spec (validated again: the plugins may have changed)."""
    job = get_job(job_id)
    job, _ = store_job(prepare_spec(request_of(job)))
    return _job_created(job)


@bp.get("/jobs/<job_id>/metrics")
def job_metrics(job_id: str):
    """Metric history after ``?since=<step>``, ``?limit=`` points, ``?kind=epoch|iteration``."""
    get_job(job_id)
    since = int_arg("since", -1, -1, MAX_DB_INT)
    limit = int_arg("limit", 1000, 1, MAX_METRIC_PAGE)
    kind = request.args.get("kind")
    if kind not in (None, "", "epoch", "iteration"):
        raise Problem(400, "Bad query parameter", "kind must be epoch or iteration",
                      [error_item("kind", f"must be 'epoch' or 'iteration', got {kind!r}")])
    points = jobstore.metric_points(db(), job_id, since, limit + 1, kind)
    has_more = len(points) > limit
    points = points[:limit]
    return jsonify({
        "points": [metric_point_answer(p) for p in points],
        "next_since": points[-1].step if points else (since if since >= 0 else None),
        "has_more": has_more,
    })


# ---------------------------------------------------------------------------- model


def _model_artifact(job):
    if not has_model(job.status, job.stop_reason):
        raise Problem(409, "No model yet", f"job {job.id} is {job.status}; a model exists "
                      "once it has succeeded", [error_item("job_id", f"job is {job.status}")])
    artifact = jobstore.model_artifact(db(), job.id)
    if artifact is None:
        raise Problem(404, "Model not found", f"job {job.id} has no stored model",
                      [error_item("job_id", "no model artifact")])
    return artifact


@bp.get("/jobs/<job_id>/model")
def download_model(job_id: str):
    """The trained model as ``.npz`` (weights, preprocessing statistics and the spec)."""
    artifact = _model_artifact(get_job(job_id))
    resp = Response(artifact.blob, mimetype="application/octet-stream")
    resp.headers["Content-Disposition"] = f'attachment; filename="{job_id}.npz"'
    resp.headers["Content-Length"] = str(len(artifact.blob))
    return resp


class _ModelCache:
    """The last few loaded models by job id (loading parses the whole ``.npz``)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, load):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def drop(self, job_id: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == job_id]:
                del self._items[key]


_model_cache = _ModelCache()


def _load_model(job):
    """``(model, lock)`` of the job's stored model; hold the lock while using the model.

    A dlcore model is not safe to share between threads: its layers keep caches and
    scratch buffers (conv2d reuses its im2col buffers), so two gunicorn threads
    predicting with one model at once answered each other's or mixed probabilities.
    """
    from dlcore.loading import load_model

    artifact = _model_artifact(job)
    return _model_cache.get((job.id, artifact.id),
                            lambda: (load_model(io.BytesIO(artifact.blob)), threading.Lock()))


def _array_from_npz(raw: bytes, field: str, sample_size: int) -> np.ndarray:
    """The ``inputs`` (or ``x``, or only) array of an uploaded ``.npz``; never unpickles.

    Every failure is a 422 naming ``field``; the message never echoes an unexpected
    exception's text.  An array larger than ``MAX_PREDICT_SAMPLES`` samples of
    ``sample_size`` float64 numbers is refused from its header, before it is decompressed.
    """
    max_bytes = MAX_PREDICT_SAMPLES * max(1, sample_size) * 8
    def refuse(message: str):
        return Problem(422, "Bad inputs", f"{field}: {message}", [error_item(field, message)])

    from api.datasets import array_bytes, npy_headers

    if not raw.startswith(b"PK"):  # np.load would take any other bytes for a pickle
        raise refuse("not an .npz archive (save the samples with numpy.savez)")
    headers = npy_headers(raw)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            keys = list(npz.files)
            key = next((k for k in ("inputs", "x") if k in keys), keys[0] if keys else None)
            if key is None:
                raise refuse("the archive holds no array")
            if key in headers and array_bytes(*headers[key]) > max_bytes:
                shape = headers[key][0]
                raise refuse(f"'{key}' has shape {shape}: at most {MAX_PREDICT_SAMPLES} samples "
                             f"of {sample_size} numbers each are accepted per request")
            return npz[key]
    except Problem:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise refuse("holds pickled objects, which are refused; save plain arrays") from None
        raise refuse(f"not a readable .npz archive ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001  (any unreadable upload is the client's error)
        raise refuse(f"not a readable .npz archive ({type(exc).__name__})") from None


def _inputs_from_request(sample_size: int) -> tuple[np.ndarray, str]:
    """The samples to predict and the request field they came from."""
    upload = request.files.get("file")
    content_type = (request.mimetype or "").lower()
    if upload is not None or content_type in ("application/octet-stream", "application/x-npz"):
        field = "file"
        raw = upload.read() if upload is not None else request.get_data()
        return _array_from_npz(raw, field, sample_size), field
    if content_type == "multipart/form-data":
        raise Problem(422, "Bad inputs", "file: required in a multipart request",
                      [error_item("file", "required: send the samples as an .npz in the form "
                                  "field 'file', or send JSON {\"inputs\": [...]}")])
    body = read_json_body()
    if "inputs" not in body:
        raise Problem(422, "Bad inputs", "inputs: required",
                      [error_item("inputs", "required: a list of samples")])
    extra = sorted(set(body) - {"inputs"})
    if extra:
        raise Problem(422, "Bad inputs", f"{extra[0]}: unknown key",
                      [error_item(extra[0], "unknown key (allowed: inputs)")])
    try:
        array = np.asarray(body["inputs"], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged, not numbers, beyond float64
        raise Problem(422, "Bad inputs", "inputs: not a rectangular array of numbers",
                      [error_item("inputs", "must be a rectangular nested list of numbers")]
                      ) from None
    return array, "inputs"


@bp.post("/jobs/<job_id>/predict")
def predict(job_id: str):
    """Class predictions and probabilities for samples shaped like the dataset's."""
    job = get_job(job_id)
    model, model_lock = _load_model(job)
    sample_shape = tuple(int(d) for d in model.sample_shape)
    x, field = _inputs_from_request(int(np.prod(sample_shape)))
    if x.dtype.kind not in "biuf":
        raise Problem(422, "Bad inputs", f"{field}: must hold numbers",
                      [error_item(field, f"must hold numbers, got dtype {x.dtype}")])
    if x.shape == sample_shape:
        x = x[None]
    expected = "(N, " + ", ".join(str(d) for d in sample_shape) + ")"
    if x.ndim != len(sample_shape) + 1 or tuple(x.shape[1:]) != sample_shape or x.shape[0] < 1:
        message = f"expected shape {expected}, got {tuple(x.shape)}"
        raise Problem(422, "Wrong input shape", f"{field}: {message}",
                      [error_item(field, message)])
    if x.shape[0] > MAX_PREDICT_SAMPLES:
        message = f"at most {MAX_PREDICT_SAMPLES} samples per request, got {x.shape[0]}"
        raise Problem(422, "Too many samples", f"{field}: {message}", [error_item(field, message)])
    if not np.all(np.isfinite(x)):
        raise Problem(422, "Bad inputs", f"{field}: holds NaN or infinity",
                      [error_item(field, "must hold finite numbers only")])
    try:
        with model_lock:
            scores = model.scores(x)  # one forward pass, as predict and predict_proba do
        predictions = np.argmax(scores, axis=1).reshape(-1)
        probabilities = np.asarray(model.loss.probabilities(scores))
    except (ConfigError, SpecError) as exc:  # the model refused the samples
        raise validation_problem(exc, title="Bad inputs") from None
    if not np.all(np.isfinite(probabilities)):
        # JSON has no NaN: values this far from the training data overflow the model.
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(probabilities))[0]})
        message = (f"the model's output overflows (not finite) for sample(s) {bad[:10]}: "
                   f"values up to {float(np.max(np.abs(x))):.3g} are far outside the "
                   "range it was trained on")
        raise Problem(422, "Bad inputs", f"{field}: {message}", [error_item(field, message)])
    return jsonify({
        "predictions": [int(p) for p in predictions],
        "probabilities": probabilities.astype(float).tolist(),
    })

