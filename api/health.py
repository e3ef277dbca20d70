"""``/healthz`` (the process answers) and ``/readyz`` (the database and broker answer)."""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, current_app, jsonify

from api.context import session_factory, settings
from api.documentation import documented, ok
from dljobs import queries
from dljobs.broker import producer

bp = Blueprint("health", __name__)
log = logging.getLogger("dljobs.api")

_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


def failure_reason(exc: BaseException) -> str:
    """One line naming why a check failed: no traceback, credentials in URLs masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _CREDENTIALS.sub(r"\1***@", text)
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


@bp.get("/healthz")
@documented("healthz", "The process answers", responses={"200": ok("Up", "Health")})
def healthz():
    return jsonify({"status": "ok", "checks": {}})


def check_database() -> None:
    with session_factory()() as session:
        queries.ping(session)


def check_broker() -> None:
    hook = current_app.config.get("DLJOBS_BROKER_CHECK")
    if hook is not None:
        hook()
        return

    with producer(settings()).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


@bp.get("/readyz")
@documented("readyz", "The database and the broker answer",
            responses={"200": ok("Ready", "Health"), "503": ok("Not ready", "Health")})
def readyz():
    """200 when every dependency answers, else 503 naming the one that does not."""
    checks = {}
    ready = True
    for name, check in (("database", check_database), ("broker", check_broker)):
        started = time.monotonic()
        try:
            check()
            checks[name] = {"ok": True, "ms": round(1000 * (time.monotonic() - started), 1)}
        except Exception as exc:
            ready = False
            log.warning("readyz: the %s check failed", name, exc_info=True)
            checks[name] = {"ok": False, "error": failure_reason(exc)}
    resp = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    if not ready:
        resp.status_code = 503
    return resp
