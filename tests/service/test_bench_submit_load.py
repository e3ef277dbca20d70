"""bench/submit_load.py at a small size: concurrent submits through `dljobs api -w 2` on PostgreSQL
and Redis lose nothing, duplicate nothing and leave one broker message per queued job; its figures
join bench/results.json's service entry without touching the rest."""

from __future__ import annotations

import json

import pytest

from bench import submit_load
from dljobs import testsupport
from tests.conftest import require_service


@pytest.mark.service
def test_a_small_submit_load_has_no_errors_no_loss_and_one_message_per_job(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    load = submit_load.run(jobs=100, clients=10, processes=2)
    assert load["errors"] == 0, load["first_errors"]
    assert load["accepted"] == load["stored_jobs"] == 100
    assert load["lost"] == 0 and load["duplicated"] == 0
    assert load["broker_messages_per_job"] <= 1
    assert load["submit_p50_ms"] > 0 and load["submit_p99_ms"] >= load["submit_p50_ms"]
    assert "0 errors, 0 lost, 0 duplicated" in submit_load.table(load)

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"networks": {"mlp": {}}, "service": {"idle_worker_cpu_percent": 0.5}}))
    submit_load.write_results(load, path)
    results = json.loads(path.read_text())
    assert results["networks"] == {"mlp": {}}
    assert results["service"]["idle_worker_cpu_percent"] == 0.5
    assert results["service"]["submit_load"] == load
