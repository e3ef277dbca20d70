"""The sweeps tests reuse the API tests' fixtures (an app on a fresh SQLite database, clients
with tokens of two owners) and the end-to-end tests' process helpers (``dljobs api`` and
``dljobs worker`` started as a person starts them); what is added here is a service on
PostgreSQL and Redis that a test can kill and start again."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import pytest

from dljobs import testsupport
from tests.api.conftest import (  # noqa: F401 - fixtures, found by name
    admin_token,
    anon_client,
    app,
    client,
    mlp_spec,
    other_owner_client,
    owner_client,
    problem,
    sent,
    session,
)
from tests.conftest import require_service
from tests.e2e.conftest import (
    DLJOBS,
    Processes,
    Service,
    create_token,
    embedded_service,  # noqa: F401 - a fixture (dljobs up --workers 2), found by name
    free_port,
    service_env,
    wait_ready,
    wait_workers,
)
from tests.service.conftest import settings  # noqa: F401 - a fresh SQLite, then PostgreSQL, database

#: Settings of the sweep services: a lost worker's job is taken over within seconds, and the
#: periodic sweep tick and reconcile catch up quickly after a restart.
FAST = {"heartbeat_timeout_s": 6, "heartbeat_interval_s": 1, "reconcile_after_s": 2, "sweep_tick_s": 1,
        "checkpoint_interval_s": 1}


class SweepService(Service):
    """``dljobs api`` and ``dljobs worker`` processes on PostgreSQL and Redis, restartable."""

    def __init__(self, procs: Processes, database_url: str, workers: int):
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", procs, database_url)
        self.workers = workers
        self.generation = 0

    def start(self) -> None:
        """Start (or start again) the API and the workers, and wait until they all answer."""
        self.generation += 1
        g = self.generation
        self.procs.start(f"api{g}", DLJOBS + ["api", "--host", "127.0.0.1", "--port", str(self.port)])
        for w in range(self.workers):
            self.procs.start(f"worker{g}-{w}", DLJOBS + ["worker"])
        wait_ready(self.base_url, self.procs)
        wait_workers(self.procs, [f"worker{g}-{w}.log" for w in range(self.workers)], self.workers)

    def kill(self) -> None:
        """SIGKILL the API and every worker (their whole process groups): nothing is handed back."""
        for name, child in self.procs.children.items():
            if child.poll() is None:
                self.procs.signal(name, signal.SIGKILL)
                child.wait()
        self.procs.children.clear()  # their logs stay; the next start adds new ones

    def token_client(self, token: str):
        from dljobs.client import Client

        return Client(self.base_url, timeout=30, token=token)


@contextlib.contextmanager
def sweep_service_running(tmp_path, workers: int = 2) -> Iterator[SweepService]:
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        env = service_env(tmp_path / "data", database_url=db_url, broker_url=redis_url, **FAST)
        procs = Processes(tmp_path, env)
        procs.run(DLJOBS + ["db", "upgrade"])
        service = SweepService(procs, db_url, workers)
        service.token = create_token(procs)
        service.http.headers["Authorization"] = f"Bearer {service.token}"
        try:
            service.start()
            yield service
        finally:
            procs.stop(grace_s=30)
            from dljobs.db import session as db_session

            for url, engine in list(db_session._engines.items()):
                if db_url.rsplit("/", 1)[-1] in url:
                    engine.dispose()


@pytest.fixture(scope="module")
def sweep_service(tmp_path_factory):
    """PostgreSQL + Redis + ``dljobs api`` + two ``dljobs worker`` processes, for a module's sweeps."""
    with sweep_service_running(tmp_path_factory.mktemp("sweeps")) as service:
        yield service


@pytest.fixture
def restartable_sweep_service(tmp_path):
    """The same, for one test that kills and restarts it."""
    with sweep_service_running(tmp_path) as service:
        yield service
