"""``GET /jobs/<id>/events``: Server-Sent Events read from the ``job_events`` log.

Each row of ``job_events`` is one event: ``id:`` is its row id, ``event:`` its type
(``status``, ``progress``, ``metrics``, ``diagnostic``), ``data:`` its JSON.  The
stream resumes after ``Last-Event-ID`` (header, or ``?last_event_id=`` for clients
that cannot set headers), sends a comment line as heartbeat, and ends once the job is
finished and every event has been sent.  The process's one poller
(``api.event_poller``) reads the log for every open stream, every ``SSE_POLL_S``
(0.2 s by default), in two queries however many streams are open; a waiting stream
holds no database connection.  Under gunicorn's ``gthread`` workers a stream holds
one thread, waiting on a condition, and other requests go on.

A process serves at most ``SSE_MAX_STREAMS`` streams at once (``DLJOBS_SSE_MAX_STREAMS``,
128 by default; ``dljobs api`` runs that many threads plus 8): one more is a 503 with
``Retry-After``, so open streams can never take every thread and leave the rest of the
API (and ``/readyz``) unanswered.
"""

from __future__ import annotations

import json
import threading
import time

from flask import Blueprint, Response, current_app, request

from api import limits
from api.context import session_factory
from api.documentation import UNKNOWN_JOB, documented, problem
from api.event_poller import EventPoller, poller_of
from api.lookups import get_job
from api.problems import Problem, error_item

bp = Blueprint("events", __name__)

MAX_EVENT_ID = 2**63 - 1
#: Streams one API process keeps open at once (``DLJOBS_SSE_MAX_STREAMS``' default): a
#: stream holds a gunicorn thread, and ``dljobs api`` runs this many plus 8 for every other
#: request (``dljobs.commands.service.API_THREADS``).
DEFAULT_MAX_STREAMS = 128
#: Seconds between two polls of the event log (``SSE_POLL_S`` in the app config).
DEFAULT_POLL_S = 0.2
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


def stream_job_events(poller: EventPoller, job_id: str, after: int, heartbeat_s: float,
                      max_s: float | None = None):
    """Yield SSE text for ``job_id``'s events with ids greater than ``after``.

    Inputs:
    - poller: the process's :class:`api.event_poller.EventPoller` (it reads the events).
    - after: the last event id the client has.
    - heartbeat_s: the longest silence before a comment line.
    - max_s: end the stream after this many seconds (the client reconnects).
    Yields: strings, each one or more complete SSE messages.
    """
    yield f"retry: 1000\n: job {job_id}\n\n"
    subscription = poller.subscribe(job_id, after)
    try:
        last_sent = time.monotonic()
        started = last_sent
        while True:
            now = time.monotonic()
            wait = heartbeat_s - (now - last_sent)
            if max_s is not None:
                wait = min(wait, max_s - (now - started))
            rows, ended = subscription.read(max(0.0, wait))
            if rows:
                last_sent = time.monotonic()
                yield "".join(format_event(r.id, r.type, r.data) for r in rows)
                continue
            if ended:
                yield ": end of stream\n\n"
                return
            now = time.monotonic()
            if max_s is not None and now - started >= max_s:
                return
            if now - last_sent >= heartbeat_s:
                last_sent = now
                yield ": heartbeat\n\n"
    finally:
        poller.unsubscribe(subscription)


def _poller() -> EventPoller:
    return poller_of(current_app.extensions, session_factory(),
                     float(current_app.config.get("SSE_POLL_S", DEFAULT_POLL_S)))


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
            _poller(), job_id, after,
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
