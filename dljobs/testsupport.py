"""Helpers for the service tests: throwaway PostgreSQL databases and Redis DB numbers.

Tests call these through ``tests/conftest.py::require_service``: on a laptop without
PostgreSQL or Redis they skip, under CI they fail.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

from dljobs.db import session as db_session

PG_HOST = os.environ.get("DLJOBS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DLJOBS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("DLJOBS_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("DLJOBS_TEST_PG_DB", "postgres")
REDIS_HOST = os.environ.get("DLJOBS_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("DLJOBS_TEST_REDIS_PORT", "6379"))


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    if not _port_open(PG_HOST, PG_PORT):
        return False
    try:

        with psycopg.connect(_admin_dsn(), connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def redis_available() -> bool:
    if not _port_open(REDIS_HOST, REDIS_PORT):
        return False
    try:

        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping())
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def _admin_dsn() -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_ADMIN_DB}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create ``dljobs_test_<random>``, yield its SQLAlchemy URL, drop it afterwards."""

    name = f"dljobs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:

        for url, engine in list(db_session._engines.items()):
            if name in url:
                engine.dispose()
                db_session._engines.pop(url, None)
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_redis_url() -> Iterator[str]:
    """A Redis URL on a random, emptied database number (1-15), flushed afterwards."""


    number = random.SystemRandom().randint(1, 15)
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
    client.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        client.flushdb()
        client.close()


def stop_process_group(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the process group ``process`` leads (started with ``start_new_session=True``), then
    SIGKILL it if it is still there after ``grace_s``: no child outlives a test or a benchmark."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def admin_test_client(app, name: str = "test-admin"):
    """A Flask test client of ``app`` that sends a new admin token (auth is on everywhere).

    For tests that build their own app; the API tests' fixtures make the same client.
    """
    # deferred: the API's session factory and the tokens only for tests that build an app
    from dljobs.tokens import create_token

    factory = db_session.session_factory(app.config["DLJOBS_SETTINGS"])  # the app's database
    with factory() as session:
        token = create_token(session, f"{name}-{uuid.uuid4().hex[:8]}", admin=True)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def jobs_by_idempotency_key(database_url: str) -> tuple[dict[str, tuple[int, str]], int]:
    """``({key: (jobs stored with it, the first job id)}, all jobs)``: what a submit test checks."""
    # deferred: SQLAlchemy's engine only for the tests and benchmarks that count jobs
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT idempotency_key, count(*), min(id) FROM jobs "
                "WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key"
            )).all()
            total = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
    finally:
        engine.dispose()
    return {key: (int(count), job_id) for key, count, job_id in rows}, int(total)
