"""The HTTP API of dljobs: a Flask app factory with one blueprint per area.

``create_app()`` reads its settings from ``dljobs.settings`` (environment variables
prefixed ``DLJOBS_``); ``config`` overrides them (see ``api.context``).  Everything
under ``/api/v1`` answers JSON, every error is problem+json (``api.problems``);
``/healthz`` and ``/readyz`` are at the root.  Run it with
``gunicorn -k gthread --threads 8 'api:create_app()'`` so open event streams never
starve other requests.
"""

from __future__ import annotations

import logging

from flask import Flask

API_PREFIX = "/api/v1"


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app.

    Inputs:
    - config: Flask config keys and the overrides described in ``api.context``.
    Returns: the app, with every blueprint and problem handler registered.
    """
    from api import context, datasets, events, health, jobs, openapi, plugins
    from api.problems import register_problem_handlers

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
    app.teardown_appcontext(context.close_db)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp, url_prefix=API_PREFIX)
    app.register_blueprint(events.bp, url_prefix=API_PREFIX)
    app.register_blueprint(datasets.bp, url_prefix=API_PREFIX)
    app.register_blueprint(plugins.bp, url_prefix=API_PREFIX)
    app.register_blueprint(openapi.bp, url_prefix=API_PREFIX)
    if not app.debug and not logging.getLogger("dljobs").handlers:
        logging.getLogger("dljobs").setLevel(logging.INFO)
    return app
