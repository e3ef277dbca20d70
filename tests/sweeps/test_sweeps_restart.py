"""A sweep survives its API and every worker killed (SIGKILL) mid-sweep: its state is in the database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from dljobs.db.models import Job
from dljobs.lifecycle import FINISHED, JobStatus, SweepStatus
from tests.e2e.conftest import small_spec

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.fault]


def trial_jobs(service, sweep_id) -> list[Job]:
    with service.session() as session:
        return list(session.scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial_index)))


def test_a_sweep_continues_after_its_api_and_workers_are_killed_and_restarted(restartable_sweep_service):
    service = restartable_sweep_service
    api = service.client()
    body = {"name": "survivor", "base": small_spec("survivor", epochs=150),
            "space": {"optimizer.lr": {"loguniform": [1e-3, 0.1]}},
            "method": {"type": "random", "trials": 5, "seed": 2}, "metric": "val_loss", "max_concurrent": 2}
    sweep = api.submit_sweep(body)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill while one trial has ended and others run mid-way
        jobs = trial_jobs(service, sweep["id"])
        if any(j.status == JobStatus.SUCCEEDED for j in jobs) and any(
                j.status == JobStatus.RUNNING and (j.progress or {}).get("epoch", 0) >= 5 for j in jobs):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no trial ended and running\n{service.procs.logs()}")
    service.kill()
    running_then = {j.id for j in jobs if j.status == JobStatus.RUNNING}
    service.start()
    done = service.client().wait_sweep(sweep["id"], timeout=300)
    assert done["status"] == SweepStatus.SUCCEEDED, (done, service.procs.logs())
    jobs = trial_jobs(service, sweep["id"])
    assert sorted(j.trial_index for j in jobs) == list(range(5))  # each trial once: none lost, none doubled
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED} and all(j.status in FINISHED for j in jobs)
    resumed = [j for j in jobs if j.id in running_then]
    assert resumed and all(j.attempt >= 2 for j in resumed)  # taken over by a new worker after the kill
    losses = [r["val_loss"] for r in done["leaderboard"]]
    assert losses == sorted(losses)  # val_loss: lowest first
