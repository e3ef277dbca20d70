"""The front door (dljobs/frontdoor.py) in front of `dljobs api`'s gunicorn: slow clients are
dropped at a deadline and never slow /healthz; uploads pass intact, oversized ones are refused
before their body is sent; an event stream flows through event by event."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from dljobs import frontdoor, testsupport
from dljobs.embedded import free_port, wait_ready

HEADER_TIMEOUT_S = 4
UPLOAD_LIMIT = 32 * 1024 * 1024


def _session(data_dir: Path) -> requests.Session:
    """The one HTTP helper of this module: sends the token the fixture made."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {(data_dir / 'token').read_text().strip()}"
    return session


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """`dljobs api` (front door on) on SQLite, with a short header deadline."""
    data = tmp_path_factory.mktemp("frontdoor") / "data"
    env = dict(os.environ, DLJOBS_DATA_DIR=str(data), DLJOBS_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
               DLJOBS_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT))
    env.pop("DLJOBS_DATABASE_URL", None)
    env.pop("DLJOBS_BROKER_URL", None)
    cli = [str(Path(sys.executable).parent / "dljobs")]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    # `dljobs api` writes no token file (only `dljobs up` does): the operator makes one.
    made = subprocess.run([str(Path(sys.executable).parent / "dljobs"), "tokens", "create", "--name", "tester", "--admin"],
                          env=env, check=True, capture_output=True, text=True, timeout=120)
    (data / "token").write_text(made.stdout.splitlines()[0])
    port = free_port()
    log = open(data / "api.log", "wb")  # noqa: SIM115 - held by the child until the fixture ends
    process = subprocess.Popen([*cli, "api", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 60, process)
        yield base, port, data
    finally:
        testsupport.stop_process_group(process, grace_s=15)
        log.close()


def _trickle(port: int, stop: threading.Event, opened: list) -> None:
    """One slow client: a byte of its headers every 200 ms, never the blank line."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    opened.append(sock)
    header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    for byte in header:
        if stop.is_set():
            break
        try:
            sock.send(bytes([byte]))
        except OSError:
            break
        time.sleep(0.2)


def test_headers_that_do_not_arrive_in_time_are_a_408_and_a_closed_connection(api):
    _, port, _ = api
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the blank line
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"application/problem+json" in answer
    assert HEADER_TIMEOUT_S - 0.5 <= waited <= HEADER_TIMEOUT_S + 5, waited


def test_a_hundred_slow_clients_leave_healthz_under_one_second(api):
    base, port, data = api
    stop, opened = threading.Event(), []
    threads = [threading.Thread(target=_trickle, args=(port, stop, opened), daemon=True) for _ in range(100)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(opened) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(opened) == 100, "all slow clients connected"
        time.sleep(0.5)  # each has sent a few bytes: under gthread alone every thread would be held
        http = _session(data)
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            assert http.get(f"{base}/healthz", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
        still_trickling = sum(thread.is_alive() for thread in threads)
    finally:
        stop.set()
        for sock in opened:
            sock.close()
    p99 = float(np.percentile(latencies, 99))
    assert still_trickling == 100, "the flood lasted through the measurement"
    assert p99 < 1.0, f"/healthz p99 {p99:.3f} s with 100 slow clients"


def _npz(n_bytes: int) -> bytes:
    rng = np.random.default_rng(0)
    n = n_bytes // (64 * 4)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.standard_normal((n, 64)).astype(np.float32), y=(np.arange(n) % 10).astype(np.int64))
    return buffer.getvalue()


def test_a_big_upload_passes_intact(api):
    base, _, data = api
    raw = _npz(20 * 1024 * 1024)
    answer = _session(data).post(f"{base}/api/v1/datasets", data=raw,
                                 headers={"Content-Type": "application/octet-stream"}, timeout=120)
    assert answer.status_code in (200, 201), answer.text[:500]
    assert answer.json()["sha256"] == hashlib.sha256(raw).hexdigest()


def test_an_oversized_body_is_a_413_before_it_is_sent(api):
    _, port, _ = api
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/octet-stream\r\n"
                     + f"Content-Length: {UPLOAD_LIMIT + 1}\r\n\r\n".encode())
        # not one byte of the body is sent: the answer comes from the headers alone
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"Content Too Large" in answer


class _SlowEvents:
    """A stand-in upstream that writes three chunked events 0.5 s apart, like a job's stream."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.written: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            buffered = b""
            while b"\r\n\r\n" not in buffered:
                buffered += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            for i in range(3):
                event = f"id: {i}\nevent: progress\ndata: {{}}\n\n".encode()
                self.written.append(time.monotonic())
                conn.sendall(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                time.sleep(0.5)
            conn.sendall(b"0\r\n\r\n")


def test_events_flow_through_the_front_door_one_by_one():
    upstream = _SlowEvents()
    port = free_port()
    limits = frontdoor.Limits(header_timeout_s=5, body_timeout_s=5, max_header_bytes=32768, max_body_bytes=1024)
    started = threading.Event()
    running = {}

    async def serve() -> None:
        running["loop"], running["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready = asyncio.Event()
        server = asyncio.create_task(frontdoor.serve("127.0.0.1", port, f"127.0.0.1:{upstream.port}",
                                                     limits, ready=ready, stop=running["stop"]))
        await ready.wait()
        started.set()
        await server

    def run() -> None:
        asyncio.run(serve())  # cancels the client handlers still open when it ends

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the front door listens"
        arrived = []
        with requests.get(f"http://127.0.0.1:{port}/api/v1/jobs/x/events", stream=True, timeout=10) as response:
            assert response.headers["Transfer-Encoding"] == "chunked"
            for line in response.iter_lines(chunk_size=1):
                if line.startswith(b"id: "):
                    arrived.append(time.monotonic())
    finally:
        running["loop"].call_soon_threadsafe(running["stop"].set)
        thread.join(10)
    assert len(arrived) == 3
    # each event reached the client before the next was written: nothing waited for the end
    assert arrived[0] < upstream.written[1]
    assert arrived[1] < upstream.written[2]
