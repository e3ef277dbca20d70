"""Fault 3: the API (`dljobs api`: front door and gunicorn) is killed with SIGKILL and restarted,
twice, while 8 clients submit jobs, each with its own Idempotency-Key and retrying on connection
errors and 5xx.  Afterwards every key a client saw accepted is stored exactly once, as the job the
client was given, and no accepted job is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from dljobs import testsupport
from dljobs.client import ApiError, Client
from dljobs.embedded import free_port, wait_ready
from tests.conftest import require_service

pytestmark = [pytest.mark.fault, pytest.mark.service]

CLIENTS = 8
RETRY_FOR_S = 45.0


def _client(base: str, data_dir: Path) -> Client:
    """Every HTTP call of this test goes through here: the token the test made."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {(data_dir / 'token').read_text().strip()}"
    return Client(base, timeout=5, session=session)


def _spec(key: str) -> dict:
    return {
        "name": f"fault3-{key}",
        "dataset": {"type": "digits"},
        "model": {"layers": [{"type": "affine", "units": 16}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 64, "seed": 0},
    }


def _submit_until_accepted(client: Client, key: str, counters: dict) -> str:
    """The job id the API gave ``key``, retrying through the restarts like a careful client."""
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            return client.submit(_spec(key), idempotency_key=key)["id"]
        # a kill mid-answer breaks the body being read: as retryable as a refused connection
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError):
            counters["connection_errors"] += 1
        except ApiError as exc:
            if exc.status < 500:
                raise
            counters["server_errors"] += 1
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} not accepted within {RETRY_FOR_S:.0f} s")
        time.sleep(0.1)


def _wait_for_more(accepted: dict, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(accepted) < count:
        assert time.monotonic() < deadline, f"only {len(accepted)} of {count} submits accepted"
        time.sleep(0.05)


def _start_api(port: int, env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(Path(sys.executable).parent / "dljobs"), "api", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_idempotent_submits_survive_kill_9_of_the_api(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    data = tmp_path / "data"
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        env = dict(os.environ, DLJOBS_DATABASE_URL=db_url, DLJOBS_BROKER_URL=redis_url, DLJOBS_DATA_DIR=str(data))
        subprocess.run([str(Path(sys.executable).parent / "dljobs"), "db", "upgrade"], env=env,
                       check=True, capture_output=True, timeout=120)
        # `dljobs api` writes no token file (only `dljobs up` does): the operator makes one.
        made = subprocess.run([str(Path(sys.executable).parent / "dljobs"), "tokens", "create", "--name", "tester", "--admin"],
                              env=env, check=True, capture_output=True, text=True, timeout=120)
        (data / "token").write_text(made.stdout.splitlines()[0])
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = _start_api(port, env, tmp_path / "api.log")
        stop = threading.Event()
        accepted: dict[str, str] = {}
        failures: list[BaseException] = []
        counters = {"connection_errors": 0, "server_errors": 0}
        lock = threading.Lock()

        def submitter(index: int) -> None:
            client = _client(base, data)
            n = 0
            try:
                while not stop.is_set():
                    key = f"client{index}-job{n}"
                    job_id = _submit_until_accepted(client, key, counters)
                    with lock:
                        accepted[key] = job_id
                    n += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failures.append(exc)

        kills = 0
        threads = [threading.Thread(target=submitter, args=(i,), daemon=True) for i in range(CLIENTS)]
        try:
            wait_ready(base, 60, api)
            for thread in threads:
                thread.start()
            for _ in range(2):
                _wait_for_more(accepted, len(accepted) + 2 * CLIENTS)  # the clients are in full flow
                os.killpg(api.pid, signal.SIGKILL)  # the front door and gunicorn, mid-request
                api.wait()
                kills += 1
                api = _start_api(port, env, tmp_path / "api.log")
                wait_ready(base, 60, api)
            _wait_for_more(accepted, len(accepted) + 2 * CLIENTS)  # and accepted again after it
        finally:
            stop.set()
            for thread in threads:
                thread.join(RETRY_FOR_S + 10)
            testsupport.stop_process_group(api, grace_s=10)

        assert not failures, failures
        assert kills == 2
        by_key, total = testsupport.jobs_by_idempotency_key(db_url)
        assert all(count == 1 for count, _ in by_key.values()), "no key stored two jobs"
        lost = [key for key in accepted if key not in by_key]
        assert not lost, f"accepted but not stored: {lost[:5]}"
        assert {key: by_key[key][1] for key in accepted} == accepted, "each key is the job its client was given"
        # every key a client tried it retried until accepted, so nothing else was stored either
        assert total == len(accepted) == len(by_key)
        print(f"fault 3: {len(accepted)} jobs accepted across {kills} kills; "
              f"{counters['connection_errors']} connection errors and {counters['server_errors']} 5xx retried")
