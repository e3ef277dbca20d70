"""Errors as ``application/problem+json`` (RFC 9457), with the fields at fault.

Every error the API answers has the same body::

    {"type": "https://dljobs.dev/problems/validation", "title": "Invalid job spec",
     "status": 422, "detail": "...", "errors": [{"field": "model.layers[0].type",
     "message": "unknown layer or activation 'conv3d'"}]}

``field`` is a dotted path into the request (``body`` for the request as a whole,
``path`` for an unknown URL, ``method`` for a method the URL does not allow); only a
500, the server's own fault, names no field.
Views raise :class:`Problem`; every ``HTTPException`` and every uncaught exception is
turned into one here, so no traceback ever reaches a client (it goes to the log).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, json, request
from werkzeug.exceptions import HTTPException

from dlcore.errors import ConfigError, SpecError

log = logging.getLogger("dljobs.api")

PROBLEM_MIMETYPE = "application/problem+json"
TYPE_BASE = "https://dljobs.dev/problems/"


class Problem(Exception):
    """An error answer: raise it from a view.

    Inputs:
    - status: the HTTP status (4xx or 5xx).
    - title: a short, status-wide summary (``Invalid job spec``).
    - detail: what went wrong with this request, for a human.
    - errors: list of ``{"field": str, "message": str}``.
    - kind: the last part of the ``type`` URI (``validation``, ``not-found``...).
    """

    def __init__(self, status: int, title: str, detail: str = "", errors=None,
                 kind: str | None = None, headers: dict | None = None):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.errors = list(errors or [])
        self.kind = kind or _kind_for(status)
        self.headers = dict(headers or {})

    def to_dict(self) -> dict:
        return {
            "type": TYPE_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": self.errors,
        }


def _kind_for(status: int) -> str:
    return {
        400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
        405: "method-not-allowed", 406: "not-acceptable", 409: "conflict",
        413: "payload-too-large", 415: "unsupported-media-type", 422: "validation",
        429: "too-many-requests", 500: "internal", 503: "unavailable",
    }.get(status, f"http-{status}")


def error_item(field: str, message: str) -> dict:
    """One ``{"field", "message"}`` entry of a problem's ``errors`` list."""
    return {"field": field or "body", "message": message}


def validation_problem(exc: ConfigError | SpecError, prefix: str = "",
                       title: str = "Invalid job spec", status: int = 422) -> Problem:
    """A 422 problem listing every error of a ``SpecError`` (or the one of a ``ConfigError``).

    Inputs:
    - exc: the error raised by ``dlcore.spec.validate``, ``inspect_npz`` and friends.
    - prefix: prepended to every field (``dataset`` when the error is about an upload).
    Returns: a :class:`Problem` whose ``errors`` name each field at fault.
    """
    errors = exc.errors if isinstance(exc, SpecError) else [exc]
    items = []
    for err in errors:
        if isinstance(err, ConfigError):
            field = err.at(prefix).field if prefix else err.field
            items.append(error_item(field, err.message))
        else:
            items.append(error_item(prefix, str(err)))
    if len(items) == 1:
        detail = f"{items[0]['field']}: {items[0]['message']}"
    else:
        detail = f"{len(items)} problems: " + "; ".join(
            f"{i['field']}: {i['message']}" for i in items[:5])
    return Problem(status, title, detail, items, kind="validation")


def problem_response(problem: Problem) -> Response:
    """The Flask response of a problem (problem+json body, its status and headers)."""
    resp = Response(json.dumps(problem.to_dict()), status=problem.status,
                    mimetype=PROBLEM_MIMETYPE)
    for key, value in problem.headers.items():
        resp.headers[key] = value
    return resp


def _from_http_exception(exc: HTTPException) -> Problem:
    status = exc.code or 500
    title = exc.name or "Error"
    detail = exc.description or title
    errors = []
    headers = {}
    if status == 413:
        limit = _max_upload()
        detail = (f"the request body is larger than the limit of {limit} bytes "
                  "(DLJOBS_MAX_UPLOAD_BYTES)" if limit else "the request body is too large")
        errors = [error_item("body", detail)]
    elif status == 405:
        allowed = getattr(exc, "valid_methods", None) or []
        detail = f"{request.method} is not allowed on {request.path}"
        if allowed:
            detail += f"; allowed: {', '.join(sorted(allowed))}"
            headers["Allow"] = ", ".join(sorted(allowed))
        errors = [error_item("method", detail)]
    elif status == 404:
        detail = f"no resource at {request.path}"
        errors = [error_item("path", detail)]
    elif 400 <= status < 500:
        errors = [error_item("body", detail)]
    return Problem(status, title, detail, errors, headers=headers)


def _max_upload() -> int | None:
    return current_app.config.get("MAX_CONTENT_LENGTH")


def register_problem_handlers(app: Flask) -> None:
    """Answer every error of ``app`` with problem+json."""

    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return problem_response(_from_http_exception(exc))

    @app.errorhandler(SpecError)
    def _spec(exc: SpecError):
        return problem_response(validation_problem(exc))

    @app.errorhandler(ConfigError)
    def _config(exc: ConfigError):
        return problem_response(validation_problem(exc))

    @app.errorhandler(Exception)
    def _uncaught(exc: Exception):
        # The traceback goes to the log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(
            500, "Internal Server Error",
            "the server failed to handle this request; the error was logged"))
