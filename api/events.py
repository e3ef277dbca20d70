"""``GET /jobs/<id>/events``: Server-Sent Events read from the ``job_events`` log.

Each row of ``job_events`` is one event: ``id:`` is its row id, ``event:`` its type
(``status``, ``progress``, ``metrics``, ``diagnostic``), ``data:`` its JSON.  The
stream polls the table (every ``SSE_POLL_S``, 0.2 s by default), resumes after
``Last-Event-ID`` (header, or ``?last_event_id=`` for clients that cannot set
headers), sends a comment line as heartbeat, and ends once the job is finished and
every event has been sent.  Each poll uses a short-lived session, so an open stream
holds no database connection while it waits; under gunicorn's ``gthread`` workers a
stream holds one thread and other requests go on.

A process serves at most ``SSE_MAX_STREAMS`` streams at once (app config, default 6 of
gunicorn's 8 threads): one more is a 503 with ``Retry-After``, so open streams can
never take every thread and leave the rest of the API (and ``/readyz``) unanswered.
"""

from __future__ import annotations

import json
import threading
import time

from flask import Blueprint, Response, current_app, request

from api import limits
from api.context import session_factory
from api.documentation import UNKNOWN_JOB, documented, problem
from api.lookups import get_job
from api.problems import Problem, error_item
from dljobs import jobstore, queries
from dljobs.lifecycle import FINISHED

bp = Blueprint("events", __name__)

BATCH = 500
MAX_EVENT_ID = 2**63 - 1
#: Streams one API process keeps open at once; ``dljobs api`` runs 8 threads, and two
#: stay free for every other request.
DEFAULT_MAX_STREAMS = 6
RETRY_AFTER_S = 2

_slots_lock = threading.Lock()


def _stream_slots() -> threading.BoundedSemaphore:
    """The app's semaphore of open streams (made once per process)."""
    ext = current_app.extensions
    with _slots_lock:
        if "dljobs.sse_slots" not in ext:
            size = int(current_app.config.get("SSE_MAX_STREAMS", _settings_max_streams()))
            ext["dljobs.sse_slots"] = threading.BoundedSemaphore(max(1, size))
        return ext["dljobs.sse_slots"]


def _settings_max_streams() -> int:
    settings = current_app.config.get("DLJOBS_SETTINGS")
    return int(getattr(settings, "sse_max_streams", DEFAULT_MAX_STREAMS))


def format_event(event_id: int, event_type: str, data) -> str:
    """One SSE message (``id``, ``event``, ``data`` lines and a blank line)."""
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload}\n\n"


def _last_event_id() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or ""
    raw = raw.strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, "Bad Last-Event-ID", "Last-Event-ID must be an event id",
                      [error_item("Last-Event-ID", f"must be an integer event id, got {raw!r}")]
                      ) from None
    if value > MAX_EVENT_ID:  # beyond the BIGINT id column: a database error, not "no events"
        raise Problem(400, "Bad Last-Event-ID", "Last-Event-ID is not an event id",
                      [error_item("Last-Event-ID", f"must be at most {MAX_EVENT_ID}, got {value}")])
    return max(0, value)


def stream_job_events(factory, job_id: str, after: int, poll_s: float, heartbeat_s: float,
                      max_s: float | None = None):
    """Yield SSE text for ``job_id``'s events with ids greater than ``after``.

    Inputs:
    - factory: a SQLAlchemy ``sessionmaker`` (each poll opens and closes a session).
    - after: the last event id the client has.
    - poll_s, heartbeat_s: poll period and the longest silence before a comment line.
    - max_s: end the stream after this many seconds (the client reconnects).
    Yields: strings, each one or more complete SSE messages.
    """
    yield f"retry: 1000\n: job {job_id}\n\n"
    last_sent = time.monotonic()
    started = last_sent
    while True:
        with factory() as session:
            # Status is read before events: a finished job's final status event was
            # committed with (or before) the status itself, so it is in this read.
            status = queries.job_status(session, job_id)
            rows = jobstore.events_since(session, job_id, after, BATCH)
        if rows:
            chunk = "".join(format_event(r.id, r.type, r.data) for r in rows)
            after = rows[-1].id
            last_sent = time.monotonic()
            yield chunk
            if len(rows) == BATCH:
                continue
        if status is None or (status in FINISHED and not rows):
            yield ": end of stream\n\n"
            return
        now = time.monotonic()
        if max_s is not None and now - started > max_s:
            return
        if now - last_sent >= heartbeat_s:
            last_sent = now
            yield ": heartbeat\n\n"
        time.sleep(poll_s)


@bp.get("/jobs/<job_id>/events")
@documented("jobEvents", "Server-Sent Events (status, progress, metrics, diagnostic)",
            parameters=[{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                        {"name": "last_event_id", "in": "query", "schema": {"type": "string"},
                         "description": "for clients that cannot set headers"}],
            responses={"200": {"description": "An event stream",
                               "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       "400": problem("Last-Event-ID is not an event id"),
                       "404": UNKNOWN_JOB,
                       "429": problem("This token has its limit of event streams open"),
                       "503": problem("This server has its limit of event streams open")})
def job_events(job_id: str):
    """Server-Sent Events of the job's status, progress, metrics and diagnostics."""
    get_job(job_id)
    after = _last_event_id()
    config = current_app.config
    token_slot = limits.open_stream()  # per token, across processes; a 429 when over
    slots = _stream_slots()
    if not slots.acquire(blocking=False):
        limits.close_stream(token_slot)
        message = (f"this server has {config.get('SSE_MAX_STREAMS', _settings_max_streams())} "
                   "event streams open already; retry, or poll GET /jobs/<id>")
        raise Problem(503, "Too many event streams", message, [error_item("path", message)],
                      headers={"Retry-After": str(RETRY_AFTER_S)})
    once = threading.Lock()

    def release() -> None:  # exactly once, however many times the response is closed
        if once.acquire(blocking=False):
            slots.release()
            limits.close_stream(token_slot)

    try:
        stream = stream_job_events(
            session_factory(), job_id, after,
            poll_s=float(config.get("SSE_POLL_S", 0.2)),
            heartbeat_s=float(config.get("SSE_HEARTBEAT_S", 15.0)),
            max_s=config.get("SSE_MAX_S"),
        )
        resp = Response(stream, mimetype="text/event-stream")
    except BaseException:
        release()
        raise
    resp.call_on_close(release)  # the stream ended, or the client went away
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
