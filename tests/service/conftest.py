"""Fixtures several service test modules share."""

from __future__ import annotations

import pytest

from dljobs import testsupport
from dljobs.db.migrate import upgrade
from dljobs.settings import Settings
from tests.conftest import require_service


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def settings(request, tmp_path):
    """Settings on a fresh, migrated database: SQLite, then PostgreSQL (its own database).

    A module that needs other settings (intervals, a single database) defines its own.
    """
    if request.param == "sqlite":
        s = Settings(data_dir=tmp_path)
        upgrade(s.effective_database_url)
        yield s
        return
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        s = Settings(data_dir=tmp_path, database_url=url)
        upgrade(url)
        yield s
