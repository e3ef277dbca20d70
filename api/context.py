"""What every view needs from the service: settings, a database session, the queue.

The app keeps one SQLAlchemy session factory (made from ``dljobs.settings`` on first
use); a request gets its own session through :func:`db`, closed at teardown.  Tests
and embedders may replace the pieces through ``create_app(config)``:

- ``DLJOBS_SETTINGS``: a ``dljobs.settings.Settings`` object.
- ``DATABASE_URL`` / ``BROKER_URL`` / ``DATA_DIR`` / ``MAX_UPLOAD_BYTES``: override one setting.
- ``DLJOBS_ENQUEUE``: ``callable(job_id)`` sending the job to the workers.
- ``DLJOBS_BROKER_CHECK``: ``callable() -> None`` raising when the broker is unreachable.
"""

from __future__ import annotations

from flask import current_app, g

from dljobs import jobstore
from dljobs.db.session import session_factory as make_session_factory
from dljobs.settings import Settings

SETTING_KEYS = ("DATABASE_URL", "BROKER_URL", "DATA_DIR", "MAX_UPLOAD_BYTES",
                "HEARTBEAT_TIMEOUT_S", "MAX_RUNTIME_S", "ALLOWED_HOSTS")


def load_settings(config: dict):
    """The service settings, with the overrides found in ``config``."""
    if config.get("DLJOBS_SETTINGS") is not None:
        return config["DLJOBS_SETTINGS"]
    overrides = {k.lower(): config[k] for k in SETTING_KEYS if k in config}
    return Settings(**overrides)


def settings():
    return current_app.config["DLJOBS_SETTINGS"]


def session_factory():
    """The app's session factory, made once from the settings."""
    ext = current_app.extensions
    if "dljobs.sessions" not in ext:
        ext["dljobs.sessions"] = make_session_factory(settings())
    return ext["dljobs.sessions"]


def db():
    """This request's database session."""
    if "db_session" not in g:
        g.db_session = session_factory()()
    return g.db_session


def close_db(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def enqueue(job_id: str) -> None:
    """Send the job to the workers (after its row is committed)."""
    hook = current_app.config.get("DLJOBS_ENQUEUE")
    if hook is not None:
        try:
            hook(job_id)
        except Exception:
            # As jobstore.enqueue does: create_job(sending=True) recorded a send that failed.
            jobstore.mark_unsent(db(), job_id)
            raise
        return
    # The request's own session: no second connection from the pool per submit.
    jobstore.enqueue(job_id, settings(), session=db())
