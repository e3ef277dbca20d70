"""Limits per token: submissions per minute (a rate) and open event streams (a count).

Both are keyed on the token (``g.principal.name``, set by ``api.auth``), else on the
client's address, and counted in one storage: the broker's Redis when the broker is
Redis, so every API process shares the count, else memory (the embedded default runs
one API process); ``DLJOBS_RATELIMIT_STORAGE_URL`` overrides it.  Over a limit is a
429 problem with ``Retry-After`` and the limit in the detail.

flask-limiter counts rates.  Open streams are a count, not a rate, so they are counted
here with the same storage: Redis ``INCR``/``DECR`` on a key that expires (a process
killed with streams open must not hold its slots forever), or a counter under a lock.
"""

from __future__ import annotations

import math
import threading
import time

from flask import Flask, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded

from api.problems import Problem, error_item, problem_response

#: Seconds a Redis stream count lives without a new stream: the safety net for counts
#: a killed API process never gave back (a stream ends within this in any case).
STREAM_COUNT_TTL_S = 3600

#: Retry-After of a refused event stream: one stream's poll period or two.
STREAM_RETRY_AFTER_S = 2


def limit_key() -> str:
    """What a limit counts by: the token's name, else (no credentials) the address."""
    principal = g.get("principal")
    if principal is not None:
        return f"token:{principal.name}"
    return f"addr:{request.remote_addr or 'unknown'}"


def storage_url(settings) -> str:
    """The storage of the counts: the setting, else the broker's Redis, else memory."""
    explicit = getattr(settings, "ratelimit_storage_url", None)
    if explicit:
        return explicit
    broker = settings.effective_broker_url
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return "memory://"


# A Redis blip must not turn submissions into 500s: the limiter fails open
# (swallow_errors) and the request goes on unlimited for that moment.
limiter = Limiter(key_func=limit_key, swallow_errors=True, headers_enabled=False)


def submit_rate() -> str:
    """The submission rate of the app's settings (``DLJOBS_SUBMIT_RATE``)."""
    return str(current_app.config["DLJOBS_SETTINGS"].submit_rate)


#: Decorates the view that creates jobs.
limit_submissions = limiter.limit(submit_rate, key_func=limit_key)


def install(app: Flask) -> None:
    """Wire the limiter and the stream counter into ``app``."""
    settings = app.config["DLJOBS_SETTINGS"]
    url = app.config.setdefault("RATELIMIT_STORAGE_URI", storage_url(settings))
    limiter.init_app(app)
    app.extensions["dljobs.stream_counter"] = (
        RedisStreamCounter(url) if url.startswith(("redis://", "rediss://"))
        else MemoryStreamCounter())

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        retry = max(1, math.ceil(current.reset_at - time.time())) if current else 60
        message = (f"over the limit of {exc.description} for this token "
                   f"(DLJOBS_SUBMIT_RATE); retry in {retry} s")
        return problem_response(Problem(429, "Too Many Requests", message,
                                        [error_item("path", message)],
                                        headers={"Retry-After": str(retry)}))


# ---------------------------------------------------------------------------- open streams


class MemoryStreamCounter:
    """Open streams per key in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, key: str, cap: int) -> bool:
        with self._lock:
            if self._open.get(key, 0) >= cap:
                return False
            self._open[key] = self._open.get(key, 0) + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)


class RedisStreamCounter:
    """Open streams per key across every API process sharing one Redis."""

    def __init__(self, url: str) -> None:
        # deferred: redis is imported only by apps whose limits live in Redis
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._errors = redis.RedisError

    def _name(self, key: str) -> str:
        return f"dljobs:streams:{key}"

    def acquire(self, key: str, cap: int) -> bool:
        try:
            pipe = self._redis.pipeline()
            pipe.incr(self._name(key))
            pipe.expire(self._name(key), STREAM_COUNT_TTL_S)
            count = pipe.execute()[0]
            if count > cap:
                self._redis.decr(self._name(key))
                return False
        except self._errors:
            return True  # fails open, as the rate limits do: Redis away is not the client's fault
        return True

    def release(self, key: str) -> None:
        try:
            if self._redis.decr(self._name(key)) <= 0:
                self._redis.delete(self._name(key))
        except self._errors:
            pass  # the key's expiry gives the slot back


def open_stream() -> tuple[str, object]:
    """Take one of this token's stream slots, or a 429; returns what ``close_stream`` needs."""
    settings = current_app.config["DLJOBS_SETTINGS"]
    cap = int(current_app.config.get("MAX_STREAMS_PER_TOKEN", settings.max_streams_per_token))
    counter = current_app.extensions["dljobs.stream_counter"]
    key = limit_key()
    if not counter.acquire(key, cap):
        message = (f"this token has {cap} event streams open already, the limit "
                   "(DLJOBS_MAX_STREAMS_PER_TOKEN); close one, or poll GET /jobs/<id>")
        raise Problem(429, "Too many event streams", message, [error_item("path", message)],
                      headers={"Retry-After": str(STREAM_RETRY_AFTER_S)})
    return key, counter


def close_stream(slot: tuple[str, object]) -> None:
    """Give back a slot ``open_stream`` took."""
    key, counter = slot
    counter.release(key)
