"""Real processes for the end-to-end tests: gunicorn, Celery workers, ``dljobs up``.

Each fixture starts the service the way a person does (the ``dljobs`` commands, in
their own process groups, with their logs in the test's tmp folder), waits for
``/readyz`` and stops everything afterwards.  On failure the logs are printed.
Auth is on: each service has an admin token (``dljobs tokens create``, or the file
``dljobs up`` writes); ``Service.client()`` and ``Service.http`` (a requests session
for raw HTTP) send it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
# The console script installed next to this interpreter (the venv's), as a person runs it.
DLJOBS = [str(Path(sys.executable).with_name("dljobs"))]


#: The upload limit of the ``api_only`` service (small, so the 413 test sends little).
MAX_UPLOAD = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes in their own sessions, stopped together (SIGTERM, then SIGKILL)."""

    def __init__(self, folder: Path, env: dict):
        self.folder = folder
        self.env = env
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:  # the child keeps its own copy
            child = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.children[name] = child
        return child

    def run(self, argv: list[str], timeout: float = 120) -> str:
        done = subprocess.run(argv, env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def logs(self, tail: int = 4000) -> str:
        out = []
        for path in sorted(self.folder.glob("*.log")):
            out.append(f"----- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def signal(self, name: str, sig: int) -> None:
        try:
            os.killpg(self.children[name].pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace_s: float = 25.0) -> None:
        for name, child in self.children.items():
            if child.poll() is None:
                self.signal(name, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.signal(name, signal.SIGKILL)
                child.wait()


def wait_ready(base_url: str, procs: Processes, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for name, child in procs.children.items():
            if child.poll() is not None:
                pytest.fail(f"{name} exited with {child.returncode}\n{procs.logs()}")
        try:
            resp = requests.get(base_url + "/readyz", timeout=2)
            if resp.status_code == 200:
                return
            last = resp.text
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.2)
    pytest.fail(f"service not ready after {timeout} s: {last}\n{procs.logs()}")


def wait_workers(procs: Processes, logs: list[str], count: int, timeout: float = 90.0) -> None:
    """Wait until ``count`` Celery workers logged "ready." (the first one up would otherwise
    drain the queue before the other can take a job)."""
    from dljobs.embedded import wait_workers_ready

    try:
        wait_workers_ready([procs.folder / name for name in logs], count, timeout)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{procs.logs()}")


def service_env(data_dir: Path, **settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLJOBS_")}
    env.update({"DLJOBS_DATA_DIR": str(data_dir), "DLJOBS_BLAS_THREADS": "1",
                "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update({f"DLJOBS_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def create_token(procs: Processes, name: str = "e2e-admin", *args: str) -> str:
    """A token made with ``dljobs tokens create`` in the service's database (admin by default)."""
    return procs.run(DLJOBS + ["tokens", "create", "--name", name, *(args or ("--admin",))]).strip()


def read_token_file(data_dir: Path, procs: Processes, timeout: float = 30.0) -> str:
    """The admin token ``dljobs up`` wrote to ``<data_dir>/token``."""
    path = data_dir / "token"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    pytest.fail(f"{path} not written\n{procs.logs()}")


class Service:
    """A running dljobs service: its URL, its processes, its database URL and an admin token."""

    def __init__(self, base_url: str, procs: Processes, database_url: str, token: str | None = None):
        self.base_url = base_url
        self.procs = procs
        self.database_url = database_url
        self.token = token
        self.http = requests.Session()  # raw HTTP with the token
        # One connection per request, as requests.get/post: a server that refuses a body
        # early (413) closes the connection, and a pooled one would fail the next call.
        self.http.headers["Connection"] = "close"
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def settings(self):
        """The service's settings, as its processes read them from their environment."""
        from dljobs.settings import Settings

        env = self.procs.env
        return Settings(data_dir=env["DLJOBS_DATA_DIR"], database_url=self.database_url,
                        broker_url=env.get("DLJOBS_BROKER_URL"))

    def client(self):
        from dljobs.client import Client

        return Client(self.base_url, timeout=30, token=self.token)

    def session(self):
        from sqlalchemy.orm import sessionmaker

        from dljobs.db.session import make_engine

        return sessionmaker(bind=make_engine(self.database_url), expire_on_commit=False)()


@contextmanager
def serving_api(tmp_path: Path, env: dict, database_url: str):
    """``dljobs db upgrade``, then ``dljobs api`` (gunicorn gthread) on a free port: its Service
    for the block, stopped after; no worker."""
    procs = Processes(tmp_path, env)
    procs.run(DLJOBS + ["db", "upgrade"])
    port = free_port()
    procs.start("api", DLJOBS + ["api", "--host", "127.0.0.1", "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, procs)
        yield Service(base, procs, database_url, create_token(procs))
    finally:
        procs.stop()


@pytest.fixture
def api_only(tmp_path):
    """gunicorn (gthread) serving the API on SQLite with the filesystem broker; no worker."""
    data = tmp_path / "data"
    with serving_api(tmp_path, service_env(data, max_upload_bytes=MAX_UPLOAD),
                     f"sqlite:///{data / 'dljobs.sqlite'}") as service:
        yield service


@pytest.fixture(scope="module")
def embedded_service(tmp_path_factory):
    """``dljobs up --workers 2``: the embedded default, exactly as a person starts it."""
    tmp_path = tmp_path_factory.mktemp("embedded")
    data = tmp_path / "data"
    env = service_env(data, heartbeat_timeout_s=30)
    procs = Processes(tmp_path, env)
    port = free_port()
    procs.start("up", DLJOBS + ["up", "--host", "127.0.0.1", "--port", str(port),
                                "--workers", "2", "--data-dir", str(data)])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, procs, timeout=90)
        wait_workers(procs, ["up.log"], 2)
        yield Service(base, procs, f"sqlite:///{data / 'dljobs.sqlite'}", read_token_file(data, procs))
    finally:
        procs.stop(grace_s=40)


@pytest.fixture(scope="module")
def production_service(tmp_path_factory):
    """PostgreSQL + Redis + ``dljobs api`` (gunicorn) + two ``dljobs worker`` processes."""
    tmp_path = tmp_path_factory.mktemp("production")
    from dljobs import testsupport
    from tests.conftest import require_service

    require_service(testsupport.postgres_available(), "PostgreSQL is not reachable")
    require_service(testsupport.redis_available(), "Redis is not reachable")
    with testsupport.fresh_postgres_database() as db_url, \
            testsupport.fresh_redis_url() as redis_url:
        env = service_env(tmp_path / "data", database_url=db_url, broker_url=redis_url,
                          heartbeat_timeout_s=30)
        procs = Processes(tmp_path, env)
        procs.run(DLJOBS + ["db", "upgrade"])
        port = free_port()
        procs.start("api", DLJOBS + ["api", "--host", "127.0.0.1", "--port", str(port)])
        procs.start("worker1", DLJOBS + ["worker"])
        procs.start("worker2", DLJOBS + ["worker"])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, procs)
            wait_workers(procs, ["worker1.log", "worker2.log"], 2)
            yield Service(base, procs, db_url, create_token(procs))
        finally:
            procs.stop(grace_s=40)
            from dljobs.db import session as db_session

            for url, engine in list(db_session._engines.items()):
                if db_url.rsplit("/", 1)[-1] in url:
                    engine.dispose()


def small_spec(name: str, epochs: int = 2, seed: int = 0, **training) -> dict:
    """A digits MLP that trains in about a second: the e2e tests test the service, not dlcore."""
    return {
        "name": name,
        "dataset": {"type": "digits", "preprocess": [{"type": "mean_image"}, {"type": "std"}]},
        "model": {"layers": [{"type": "flatten"}, {"type": "affine", "units": 32},
                             {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "momentum", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed, **training},
    }


@pytest.fixture
def make_spec():
    return small_spec
