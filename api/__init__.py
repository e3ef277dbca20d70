"""The HTTP API of dljobs: a Flask app factory with one blueprint per resource.

Blueprints (``jobs``, ``models``, ``events``, ``datasets``, ``plugins``, ``health``,
``openapi``, ``pages``, ``logs``, ``metrics``, ``sweeps``, ``sweep_pages``) never import one another; what several need lives in modules that are
not blueprints: ``api.requests`` (request hygiene), ``api.lookups`` (a row or a 404),
``api.uploads`` (``.npz`` reading), ``api.model_cache``, ``api.serializers`` (the
answers), ``api.problems`` (errors), ``api.documentation`` (what each view declares
for the OpenAPI document), ``api.context`` (settings, session, queue), ``api.auth`` (who may call what:
every request but the public few needs a token).  Persistence
reads are ``dljobs.queries``; views hold no SQL.

``create_app()`` reads its settings from ``dljobs.settings`` (environment variables
prefixed ``DLJOBS_``); ``config`` overrides them (see ``api.context``).  Everything
under ``/api/v1`` answers JSON, every error is problem+json (``api.problems``);
``/healthz`` and ``/readyz`` are at the root.  Run it with
``gunicorn -k gthread --threads 136 'api:create_app()'`` (``dljobs api`` does): up to
128 open event streams (``DLJOBS_SSE_MAX_STREAMS``) and 8 threads for every other request.
"""

from __future__ import annotations

import logging

from flask import Flask

from api import (
    auth,
    context,
    datasets,
    events,
    health,
    jobs,
    limits,
    logs,
    metrics,
    model_cache,
    models,
    openapi,
    pages,
    plugins,
    sweep_pages,
    sweeps,
)
from api.problems import register_problem_handlers
from dljobs.logging_json import use_json_lines

API_PREFIX = "/api/v1"

#: Every blueprint and its URL prefix, in the order they are registered.
BLUEPRINTS = (
    (health.bp, ""),
    (jobs.bp, API_PREFIX),
    (models.bp, API_PREFIX),
    (events.bp, API_PREFIX),
    (datasets.bp, API_PREFIX),
    (plugins.bp, API_PREFIX),
    (openapi.bp, API_PREFIX),
    (pages.bp, ""),
    (logs.bp, API_PREFIX),
    (metrics.bp, ""),
    (sweeps.bp, API_PREFIX),
    (sweep_pages.bp, ""),
)


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app.

    Inputs:
    - config: Flask config keys and the overrides described in ``api.context``.
    Returns: the app, with every blueprint and problem handler registered.
    """
    app = Flask(__name__)
    config = dict(config or {})
    app.json.sort_keys = False
    app.config.update(config)
    app.config["DLJOBS_SETTINGS"] = context.load_settings(config)
    if "MAX_CONTENT_LENGTH" not in config:
        limit = getattr(app.config["DLJOBS_SETTINGS"], "max_upload_bytes", None)
        if limit:
            app.config["MAX_CONTENT_LENGTH"] = int(limit)

    register_problem_handlers(app)
    if app.config["DLJOBS_SETTINGS"].log_json:
        use_json_lines()  # DLJOBS_LOG_JSON: this process logs JSON lines
    metrics.install(app)  # its clock starts before every other before_request
    auth.install(app)  # before every view: Host check, tokens, default deny, CSRF
    app.teardown_appcontext(context.close_db)
    model_cache.install(app)
    limits.install(app)
    for blueprint, prefix in BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix=prefix or None)
    if not app.debug and not logging.getLogger("dljobs").handlers:
        logging.getLogger("dljobs").setLevel(logging.INFO)
    return app
