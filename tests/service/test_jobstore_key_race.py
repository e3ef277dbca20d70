"""Two requests racing with one Idempotency-Key: the loser answers the winner's job."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from dljobs import jobstore, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.settings import Settings
from tests.conftest import require_service

SPEC = {"dataset": {"type": "digits"}, "training": {"epochs": 1}}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def factory(request, tmp_path):
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path)
        upgrade(settings.effective_database_url)
        yield session_factory(settings)
        return
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        upgrade(url)
        yield session_factory(Settings(data_dir=tmp_path, database_url=url))


def test_the_loser_of_a_key_race_gets_the_winners_job(factory, monkeypatch):
    with factory() as winner_session:
        winner = jobstore.create_job(winner_session, SPEC, None, "a", "race", request_hash="h")
        winner_id = winner.id
    # The loser looked the key up before the winner committed: its lookup saw nothing,
    # so its INSERT is the first to hit the unique index (a 500 at flush, before the fix).
    real_lookup = jobstore.find_by_idempotency_key
    calls = []

    def late_lookup(session, key):
        calls.append(key)
        return None if len(calls) == 1 else real_lookup(session, key)

    monkeypatch.setattr(jobstore, "find_by_idempotency_key", late_lookup)
    with factory() as loser_session:
        loser = jobstore.create_job(loser_session, SPEC, None, "a", "race", request_hash="h")
        assert loser.id == winner_id and loser.created_now is False and len(calls) == 2
        assert loser_session.scalar(select(func.count()).select_from(Job)) == 1
