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


def test_an_embedded_message_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """The filesystem transport writes a message under a name readers skip, then renames it:
    a worker polling mid-write sees nothing rather than an empty file (which killed it)."""
    from dljobs import broker

    with backend("embedded", tmp_path) as settings:
        folder = settings.broker_dir / "out"
        seen_mid_write = []
        real_replace = broker.os.replace

        def look_then_replace(src, dst):
            seen_mid_write.extend(p.name for p in folder.iterdir())
            with broker.producer(settings).connection_for_read() as conn:  # a reader polling right now
                queue = conn.SimpleQueue(settings.queue_name)
                try:
                    queue.get(timeout=0.05)
                    raise AssertionError("a reader got a message still being written")
                except queue.Empty:
                    pass
                finally:
                    queue.close()
            real_replace(src, dst)

        monkeypatch.setattr(broker.os, "replace", look_then_replace)
        job_id = submit(settings, 5, 0)
        [name] = seen_mid_write
        assert name.startswith(".") and name.endswith(".part")
        [final] = [p.name for p in folder.iterdir()]
        assert final.endswith(f".{settings.queue_name}.msg")
        with session_factory(settings)() as session:
            assert jobstore.queue_positions(session, [job_id]) == {job_id: 1}
