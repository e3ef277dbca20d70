"""The reconcile lock on PostgreSQL: a holder that goes silent (cut off by the network, its
connection still open as far as the server knows) loses it, so another worker takes over."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import DBAPIError

from dljobs import testsupport
from dljobs.db.locks import try_exclusive
from dljobs.settings import Settings
from tests.conftest import require_service

pytestmark = pytest.mark.service


def test_a_silent_holder_loses_the_lock_after_its_hold_limit(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        settings = Settings(database_url=url, data_dir=tmp_path)
        # the server ends the silent holder's transaction: leaving the block raises
        with pytest.raises(DBAPIError), try_exclusive(settings, "probe", hold_limit_s=1.0) as ours:
            assert ours
            with try_exclusive(settings, "probe") as theirs:
                assert not theirs, "held: nobody else may take it"
            time.sleep(2.0)  # silent, like a host whose link was cut mid-pass
            with try_exclusive(settings, "probe") as theirs:
                assert theirs, "a silent holder past its hold limit keeps the lock"
