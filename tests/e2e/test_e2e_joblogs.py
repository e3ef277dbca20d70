"""A real worker trains a job: /metrics moves as it runs, and its logs outlive the worker.

PostgreSQL, Redis, ``dljobs api`` and one ``dljobs worker`` with ``DLJOBS_LOG_JSON=1``.
While the job runs, ``/metrics`` (parsed by prometheus-client's parser) shows it
running and training; once it succeeded the figures say so.  Then the worker is killed
(SIGKILL, its whole process group), and the job's log lines are read over HTTP and with
``dljobs logs``: they were stored in the database, not on the worker's disk.  The
worker's own log is JSON lines, each line it wrote for the job carrying the job id.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from dljobs import testsupport
from tests.conftest import require_service
from tests.e2e.conftest import (
    DLJOBS,
    REPO,
    Processes,
    Service,
    create_token,
    free_port,
    service_env,
    small_spec,
    wait_ready,
    wait_workers,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.fixture
def service_with_one_worker(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL is not reachable")
    require_service(testsupport.redis_available(), "Redis is not reachable")
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        env = service_env(tmp_path / "data", database_url=db_url, broker_url=redis_url, log_json=1)
        procs = Processes(tmp_path, env)
        procs.run(DLJOBS + ["db", "upgrade"])
        port = free_port()
        procs.start("api", DLJOBS + ["api", "--host", "127.0.0.1", "--port", str(port)])
        procs.start("worker", DLJOBS + ["worker"])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, procs)
            wait_workers(procs, ["worker.log"], 1)
            yield Service(base, procs, db_url, create_token(procs))
        finally:
            procs.stop()


def scrape(service) -> dict[str, dict[tuple, float]]:
    resp = service.http.get(service.base_url + "/metrics", timeout=10)
    assert resp.status_code == 200, resp.text
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_move_as_a_job_runs_and_its_logs_outlive_its_worker(service_with_one_worker):
    service = service_with_one_worker
    client = service.client()
    before = scrape(service)
    assert before["dljobs_jobs"][(("status", "succeeded"),)] == 0
    assert before["dljobs_broker_up"][()] == 1  # the Redis path of the queue depth answered
    assert (("queue", "dljobs"),) in before["dljobs_queue_depth"]

    # batches of 4 (a smaller rate for them): eight times the steps of the default, so it trains for
    # some seconds and a scrape meets it running (at batch 32 it could end before its first progress write)
    spec = small_spec("logged", epochs=60, batch_size=4)
    spec["optimizer"]["lr"] = 0.01
    job_id = client.submit(spec)["id"]
    running_seen = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        figures = scrape(service)
        iterations = figures.get("dljobs_job_iterations", {}).get((("job_id", job_id),))
        if iterations:
            running_seen = figures
            break
        if client.get(job_id)["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert running_seen is not None, f"the job was never scraped while it trained: {client.get(job_id)}"
    assert running_seen["dljobs_jobs"][(("status", "running"),)] == 1
    assert running_seen["dljobs_training_iterations_per_second"][()] > 0

    job = client.wait(job_id, timeout=600)
    assert job["status"] == "succeeded", job
    after = scrape(service)
    assert after["dljobs_jobs"][(("status", "succeeded"),)] == 1
    assert after["dljobs_job_duration_seconds_count"][(("status", "succeeded"),)] == 1
    assert (("job_id", job_id),) not in after.get("dljobs_job_iterations", {})
    route = (("method", "POST"), ("route", "/api/v1/jobs"))
    assert after["dljobs_api_request_duration_seconds_count"][route] == 1

    # the worker goes, the way a machine goes: at once, with nothing flushed on the way out
    service.procs.signal("worker", signal.SIGKILL)
    service.procs.children["worker"].wait(timeout=30)

    lines = []
    after_seq = 0
    while True:
        page = client.logs(job_id, after=after_seq)
        lines += page["lines"]
        after_seq = page["next_after"]
        if not page["lines"]:
            break
    messages = [line["message"] for line in lines]
    assert any(m.startswith(f"job {job_id}: attempt 1 on ") for m in messages), messages
    assert sum(f"job {job_id}: epoch " in m for m in messages) == 60, messages
    assert messages[-1] == f"job {job_id}: ended succeeded (attempt 1)"

    cli = subprocess.run(DLJOBS + ["logs", job_id, "--follow", "--json", "--url", service.base_url,
                                   "--token", service.token],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["message"] for line in cli.stdout.splitlines()] == messages
    plain = subprocess.run(DLJOBS + ["logs", job_id, "--url", service.base_url, "--token", service.token],
                           cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert plain.returncode == 0 and plain.stdout.splitlines()[-1].endswith(messages[-1])
    missing = subprocess.run(DLJOBS + ["logs", "f" * 32, "--url", service.base_url, "--token",
                                       service.token],
                             cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "404" in missing.stderr
    gone = subprocess.run(DLJOBS + ["logs", job_id, "--url", f"http://127.0.0.1:{free_port()}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode == 3

    worker_log = (service.procs.folder / "worker.log").read_text()
    records = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    for_job = [r for r in records if f"job {job_id}:" in r["message"]]
    assert for_job and all(r.get("job_id") == job_id for r in for_job)
    assert {"time", "level", "logger", "message"} <= set(for_job[0])
    with pytest.raises(requests.HTTPError):  # no token, no logs
        requests.get(f"{service.base_url}/api/v1/jobs/{job_id}/logs", timeout=10).raise_for_status()
