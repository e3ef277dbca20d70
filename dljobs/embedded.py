"""Start and stop ``dljobs up`` as a child process: what ``make demo`` and the tests use."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base_url: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Wait until ``/readyz`` answers 200 (database and broker reachable)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode} before it was ready")
        try:
            response = requests.get(f"{base_url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout_s:.0f} s: {last}")


#: The line a Celery worker logs once it consumes: ``worker1@host ready.``
WORKER_READY = re.compile(rb"@\S+ ready\.")


def wait_workers_ready(log_paths, count: int, timeout_s: float = 90.0,
                       process: subprocess.Popen | None = None) -> None:
    """Wait until ``count`` Celery workers have logged that they are ready in these logs.

    ``/readyz`` says the API, database and broker answer; a test that needs every worker
    to take jobs must also wait for the workers, or the first one up drains the queue.
    """
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode} before its workers were ready")
        seen = 0
        for path in log_paths:
            try:
                seen += len(WORKER_READY.findall(Path(path).read_bytes()))
            except OSError:
                pass
        if seen >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{seen} of {count} workers ready after {timeout_s:.0f} s")


class EmbeddedService:
    """``dljobs up`` on a free port with its own data directory."""

    def __init__(self, data_dir: str | Path, workers: int = 1, port: int | None = None,
                 log_path: str | Path | None = None, env: dict | None = None):
        self.data_dir = Path(data_dir)
        self.workers = workers
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else self.data_dir / "up.log"
        self.env = env
        self.process: subprocess.Popen | None = None
        self.token: str | None = None  # the admin token `dljobs up` wrote, read after start

    def start(self, timeout_s: float = 90.0) -> EmbeddedService:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # The embedded default: no inherited database or broker unless asked for.
        env.pop("DLJOBS_DATABASE_URL", None)
        env.pop("DLJOBS_BROKER_URL", None)
        env.update(self.env or {})
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed once the child holds it
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from dljobs.cli import main; main()", "up", "--port", str(self.port),
             "--workers", str(self.workers), "--data-dir", str(self.data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        log.close()
        wait_ready(self.base_url, timeout_s, self.process)
        self.token = self.read_token()
        return self

    @property
    def token_path(self) -> Path:
        return self.data_dir / "token"

    def read_token(self) -> str | None:
        """The admin token ``dljobs up`` wrote to ``<data_dir>/token`` (None before it did)."""
        try:
            return self.token_path.read_text().strip() or None
        except OSError:
            return None

    def client(self, **kwargs):
        """A ``dljobs.client.Client`` of this service, with its admin token."""
        # deferred: the client pulls in requests' session machinery only when asked for
        from dljobs.client import Client

        return Client(self.base_url, token=self.token or self.read_token(), **kwargs)

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header raw HTTP calls to this service send."""
        token = self.token or self.read_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def stop(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C (SIGINT) to ``dljobs up`` and wait for it; returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def wait_workers(self, timeout_s: float = 90.0) -> EmbeddedService:
        """Wait until every worker process consumes (see :func:`wait_workers_ready`)."""
        wait_workers_ready([self.log_path], self.workers, timeout_s, self.process)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
