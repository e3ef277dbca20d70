"""bench/throughput.py at a small size: real workers drain queued jobs, and every job is counted
once, by the process that trained it (no figure is judged here: the benchmark does that)."""

from __future__ import annotations

import pytest

from bench import throughput
from dljobs import testsupport
from tests.conftest import require_service


@pytest.mark.service
@pytest.mark.slow
def test_one_and_two_workers_drain_the_queue_and_each_job_is_counted_once():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    figures = throughput.run(jobs=3, worker_counts=(1, 2))
    assert figures["backend"] == "postgresql+redis"
    for n in ("1", "2"):
        assert figures[n]["jobs"] == 3 and sum(figures[n]["jobs_per_process"]) == 3
        assert figures[n]["wall_s"] > 0 and figures[n]["jobs_per_minute"] > 0
    assert len(figures["1"]["jobs_per_process"]) == 1
    assert len(figures["2"]["jobs_per_process"]) <= 2
    assert figures["speedup"] == pytest.approx(figures["2"]["jobs_per_minute"] / figures["1"]["jobs_per_minute"], rel=1e-2)
    assert "2 worker(s): 3 jobs" in throughput.table(figures)
