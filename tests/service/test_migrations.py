"""Alembic makes the schema, and what it makes is exactly what the models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from dljobs import testsupport
from dljobs.db.migrate import downgrade, upgrade
from dljobs.db.models import Base
from dljobs.db.session import make_engine
from tests.conftest import require_service

TABLES = {"jobs", "metric_points", "diagnostic_events", "job_events", "datasets", "artifacts",
          "api_tokens", "artifact_chunks", "job_logs", "sweeps"}


def _diffs(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _check_round_trip(url: str) -> None:
    upgrade(url)
    assert _tables(url) == TABLES
    assert _diffs(url) == []
    downgrade(url, "base")
    assert _tables(url) == set()
    upgrade(url)
    assert _diffs(url) == []


def test_migrations_match_models_on_sqlite(tmp_path):
    _check_round_trip(f"sqlite:///{tmp_path / 'm.sqlite'}")


def test_sqlite_connections_use_wal_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    engine.dispose()
    assert mode == "wal"
    assert timeout >= 1000


@pytest.mark.service
def test_migrations_match_models_on_postgresql():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        _check_round_trip(url)


def test_dljobs_db_upgrade_works_from_any_directory(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, DLJOBS_DATA_DIR=str(tmp_path / "data"))
    env.pop("DLJOBS_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "from dljobs.cli import main; main()", "db", "upgrade"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    url = f"sqlite:///{(tmp_path / 'data' / 'dljobs.sqlite').resolve()}"
    assert _tables(url) == TABLES
    assert _diffs(url) == []


def _check_references_move_out_of_the_spec(url: str) -> None:
    """0002 moves a stored job's dataset_id and warm_start into their columns, and back on downgrade."""
    import json

    from sqlalchemy import text

    upgrade(url, "0001")
    old_spec = {"dataset": {"type": "npz", "dataset_id": "d1", "path": None, "sample_shape": [2], "num_classes": 2},
                "training": {"epochs": 1, "warm_start": "j0", "max_attempts": 5}}
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO jobs (id, spec, status, attempt, max_attempts, created_at) "
                     "VALUES ('j1', :spec, 'queued', 0, 5, CURRENT_TIMESTAMP)"),
                {"spec": json.dumps(old_spec)},
            )
        upgrade(url)
        with engine.connect() as connection:
            spec, dataset_id, warm = connection.execute(
                text("SELECT spec, dataset_id, warm_start_job_id FROM jobs WHERE id = 'j1'")).one()
        spec = spec if isinstance(spec, dict) else json.loads(spec)
        assert (dataset_id, warm) == ("d1", "j0")
        assert spec["dataset"] == {"type": "npz", "sample_shape": [2], "num_classes": 2}
        assert spec["training"] == {"epochs": 1}
        downgrade(url, "0001")
        with engine.connect() as connection:
            spec = connection.execute(text("SELECT spec FROM jobs WHERE id = 'j1'")).scalar_one()
        spec = spec if isinstance(spec, dict) else json.loads(spec)
        assert spec["dataset"]["dataset_id"] == "d1" and spec["training"]["warm_start"] == "j0"
        assert spec["training"]["max_attempts"] == 5
    finally:
        engine.dispose()


def test_job_references_move_out_of_the_spec_on_sqlite(tmp_path):
    _check_references_move_out_of_the_spec(f"sqlite:///{tmp_path / 'r.sqlite'}")


@pytest.mark.service
def test_job_references_move_out_of_the_spec_on_postgresql():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        _check_references_move_out_of_the_spec(url)


def _check_upgrades_keep_every_job_row(url: str) -> None:
    """Upgrading a database with jobs in it loses none of their rows: on SQLite a migration that
    rebuilt ``jobs`` (batch mode, as adding a foreign key does) would cascade-delete them."""
    from sqlalchemy import text

    upgrade(url, "0006")
    engine = make_engine(url)
    children = ("metric_points", "job_events", "diagnostic_events", "artifacts")
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO jobs (id, spec, status, attempt, max_attempts, handbacks, "
                                    "created_at) VALUES ('j1', '{}', 'running', 1, 3, 0, CURRENT_TIMESTAMP)"))
            connection.execute(text('INSERT INTO metric_points (job_id, step, kind, iteration, epoch, "values", '
                                    "created_at) VALUES ('j1', 0, 'iteration', 1, 0.0, '{\"loss\": 2.3}', "
                                    "CURRENT_TIMESTAMP)"))
            connection.execute(text("INSERT INTO job_events (job_id, type, data, created_at) "
                                    "VALUES ('j1', 'status', '{}', CURRENT_TIMESTAMP)"))
            connection.execute(text("INSERT INTO diagnostic_events (job_id, code, severity, iteration, epoch, "
                                    "message, created_at) VALUES ('j1', 'nan_loss', 'error', 1, 0.0, 'm', "
                                    "CURRENT_TIMESTAMP)"))
            connection.execute(text("INSERT INTO artifacts (job_id, kind, attempt, iteration, size_bytes, "
                                    "complete, created_at) VALUES ('j1', 'model', 1, 1, 0, true, CURRENT_TIMESTAMP)"))
        upgrade(url)
        with engine.connect() as connection:
            counts = {table: connection.execute(text(f"SELECT count(*) FROM {table} WHERE job_id = 'j1'")).scalar()
                      for table in children}
            job = connection.execute(text("SELECT status, priority, sweep_id FROM jobs WHERE id = 'j1'")).one()
    finally:
        engine.dispose()
    assert counts == dict.fromkeys(children, 1)
    assert tuple(job) == ("running", 5, None)


def test_upgrading_keeps_every_job_row_on_sqlite(tmp_path):
    _check_upgrades_keep_every_job_row(f"sqlite:///{tmp_path / 'k.sqlite'}")


@pytest.mark.service
def test_upgrading_keeps_every_job_row_on_postgresql():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        _check_upgrades_keep_every_job_row(url)
