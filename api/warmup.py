"""gunicorn configuration of ``dljobs api`` and ``dljobs up``: ready each API process before it serves.

``api_command`` runs gunicorn with ``-c python:api.warmup``; gunicorn reads the hook below
from this module (every other name here is ignored).  Without it the first requests of a
new process paid for what the process builds once: the plugin registry read from entry
points (0.6 s on an idle machine), the first database connection, the Celery producer.
Under 50 concurrent submitters every one of those first requests built the registry
itself at once, each under the GIL: 5-6 s for the first submit of every client, the whole
p99 of the submit-load benchmark.  The hook builds them in the worker after it loads the
app and before it accepts a connection.  A part that fails (the database not up yet) is
logged and left to the first request, as before: readiness (``/readyz``) reports it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("dljobs.api.warmup")


def warm(app) -> None:
    """Build what every submit uses, once, in this process."""
    # deferred: gunicorn's master imports this module for its hook; the app's parts load in the worker
    from api import context
    from dlcore.registry import default_registry
    from dljobs import broker, queries

    default_registry()
    with app.app_context():
        settings = context.settings()
        try:
            with context.session_factory()() as session:
                queries.ping(session)
        except Exception:  # a database still starting is the first request's to meet
            log.warning("warm-up: no database connection yet", exc_info=True)
        if app.config.get("DLJOBS_ENQUEUE") is None:
            broker.producer(settings)


def post_worker_init(worker) -> None:
    """gunicorn's hook: the worker has loaded the app (``worker.wsgi``) and serves next."""
    try:
        warm(worker.wsgi)
    except Exception:  # a warm-up is an optimisation: never a reason not to serve
        log.warning("warm-up of the API process failed; the first requests do it", exc_info=True)
