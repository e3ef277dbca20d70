"""A priority-9 job overtakes a queue of priority-0 jobs on every broker: by message priority on
Redis and RabbitMQ, and on the embedded default's filesystem transport, which has none, by a
worker taking the highest-priority queued job the database holds (``jobstore.take_higher_priority``)."""

from __future__ import annotations

import pytest

from dljobs import jobstore
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus
from tests.faults.support import Workers, all_finished, backend, spec, wait_for, worker_env

pytestmark = [pytest.mark.service, pytest.mark.slow]


def submit(settings, priority: int, seed: int) -> str:
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, spec(seed=seed, epochs=5), None, priority=priority).id
    jobstore.enqueue(job_id, settings)
    return job_id


@pytest.mark.parametrize("broker", ["embedded", "redis", "rabbitmq"])
def test_a_priority_9_job_overtakes_the_queue_on_every_broker(broker, tmp_path):
    with backend(broker, tmp_path) as settings:
        crowd = [submit(settings, 0, seed) for seed in range(8)]
        urgent = submit(settings, 9, 99)
        with session_factory(settings)() as session:
            assert jobstore.queue_positions(session, [urgent]) == {urgent: 1}
        workers = Workers(tmp_path, worker_env(settings))
        try:
            workers.start("w1")
            jobs = wait_for("every job finished", lambda: all_finished(settings, [*crowd, urgent]), 180,
                            workers.logs)
        finally:
            workers.stop()
        started = {j.id: j.started_at for j in jobs}
        before_urgent = [job_id for job_id in crowd if started[job_id] < started[urgent]]
        assert len(before_urgent) <= 1  # the message the worker had in hand, at most
        with session_factory(settings)() as session:
            assert {session.get(Job, j).status for j in [*crowd, urgent]} == {JobStatus.SUCCEEDED}
