"""Fault 4: PostgreSQL unreachable from one worker for 20 s, through a TCP proxy the test
controls: a silent partition (nothing answers) and reset connections.

The cut-off worker retries its writes with backoff; its watchdog stops its consumer
while the database does not answer (so the other worker, with a direct connection, takes
the queue) and starts it again once it answers.  Its running job continues when the
database is back, or is handed on to the other worker once its heartbeat is stale:
never left running with nobody training it.  Jobs queued during the cut all succeed.
"""

from __future__ import annotations

import time

import pytest

from dljobs import testsupport
from dljobs.settings import Settings
from tests.conftest import require_service
from tests.faults.support import (
    Workers,
    all_finished,
    fresh_postgres,
    job,
    spec,
    submit,
    wait_for,
    worker_env,
)
from tests.faults.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.fault, pytest.mark.service]

CUT_S = 20.0


def through(proxy: TcpProxy, db_url: str) -> str:
    """``db_url`` with its host and port replaced by the proxy's."""
    scheme, rest = db_url.split("://", 1)
    user, rest = rest.split("@", 1)
    _hostport, name = rest.split("/", 1)
    return f"{scheme}://{user}@127.0.0.1:{proxy.port}/{name}"


@pytest.mark.parametrize("cut", ["silent", "reset"])
def test_a_worker_cut_off_from_postgres_hands_on_or_continues_and_loses_nothing(cut, tmp_path):
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    with fresh_postgres() as db_url, testsupport.fresh_redis_url() as redis_url:
        settings = Settings(data_dir=tmp_path / "data", database_url=db_url, broker_url=redis_url)
        proxy = TcpProxy(testsupport.PG_HOST, testsupport.PG_PORT)
        env = worker_env(settings, reconcile_after_s=3, checkpoint_interval_s=1)
        workers = Workers(tmp_path, env)
        try:
            workers.start("cut", DLJOBS_DATABASE_URL=through(proxy, db_url))
            workers.wait_ready("cut")
            long_job = submit(settings, spec(seed=1, epochs=800))
            wait_for("the long job running on the worker behind the proxy",
                     lambda: job(settings, long_job).status == "running", 60, workers.logs)
            workers.start("direct")
            workers.wait_ready("direct")
            queued = [submit(settings, spec(seed=10 + i, epochs=60)) for i in range(2)]

            getattr(proxy, "silence" if cut == "silent" else "reset")()
            cut_at = time.monotonic()
            time.sleep(2.0)
            queued += [submit(settings, spec(seed=20 + i, epochs=60)) for i in range(2)]  # sent while cut off
            wait_for("the cut-off worker to stop consuming",
                     lambda: "no longer consuming" in workers.log("cut"), CUT_S, workers.logs)
            time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
            proxy.forward()

            ids = [long_job, *queued]
            jobs = wait_for("every job's end", lambda: all_finished(settings, ids), 150, workers.logs)
            wait_for("the cut-off worker consuming again",
                     lambda: "database reachable again" in workers.log("cut"), 30, workers.logs)
            logs = workers.logs()
        finally:
            workers.stop()
            proxy.close()
    assert {j.status for j in jobs} == {"succeeded"}, [(j.id, j.status, j.error_code, j.error_message) for j in jobs]
    held = next(j for j in jobs if j.id == long_job)
    # Continued by its first attempt, or handed on once (resumed from its checkpoint).
    assert held.attempt in (1, 2), logs
    print(f"{cut}: the long job ended after {held.attempt} attempt(s)")
