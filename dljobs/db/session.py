"""Engines and sessions: SQLite gets WAL mode and a busy timeout on every connection."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from dljobs.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000

#: libpq options of every PostgreSQL connection: a database that stops answering (a
#: silent partition, a reset) is noticed within seconds instead of hanging a worker.
#: connect_timeout bounds a new connection; keepalives probe an idle one (5 s idle, then
#: every 2 s, dead after 3 misses); tcp_user_timeout drops one whose sent data goes
#: unacknowledged for 10 s; statement_timeout ends a statement the server runs too long.
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "options": "-c statement_timeout=60000",
}

_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the API read while a worker writes; the busy timeout makes concurrent
    # writers (several worker processes) wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs) -> Engine:
    """A new engine for ``url`` (SQLite connections configured for concurrent processes)."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {})
        kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        kwargs["connect_args"].setdefault("check_same_thread", False)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgresql+psycopg"):
        kwargs["connect_args"] = {**POSTGRES_CONNECT_ARGS, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


def get_engine(url: str) -> Engine:
    """One shared engine per URL and process (engines hold the connection pool)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    return engine


def session_factory(settings=None) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to the settings' database (``expire_on_commit=False``)."""
    if settings is None:

        settings = get_settings()
    if settings.database_url is None:
        settings.data_path.mkdir(parents=True, exist_ok=True)
    return sessionmaker(bind=get_engine(settings.effective_database_url), expire_on_commit=False)
