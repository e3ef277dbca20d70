"""One message per queued job in steady state: 2,000 queued jobs, no worker consuming,
two reconcilers (separate processes, as two workers run them) passing every second for
25 s leave exactly one message per job in Redis, including the jobs whose message was
lost and those never sent."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import redis

from dljobs import jobstore, testsupport
from dljobs.broker import TRAIN_TASK, message_job_id, producer, redis_queue_lists
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job, utcnow
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus
from dljobs.settings import Settings
from tests.conftest import require_service

pytestmark = pytest.mark.service

JOBS, NEVER_SENT, LOST = 2000, 100, 100
RUN_S = 25

RECONCILER = """
import sys, time
from dljobs.jobstore import reconcile_queue
from dljobs.settings import get_settings
settings, end = get_settings(), time.monotonic() + float(sys.argv[1])
passes = sent = 0
while time.monotonic() < end:
    sent += len(reconcile_queue(settings, older_than_s=1.0))
    passes += 1
    time.sleep(1.0)
print(passes, sent)
"""


def test_two_reconcilers_leave_one_message_per_queued_job(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        upgrade(db_url)
        settings = Settings(data_dir=tmp_path, database_url=db_url, broker_url=redis_url, queue_name="reconcile-test")
        long_ago = utcnow() - timedelta(minutes=5)  # every one of them "overdue" by time alone
        spec = {"name": "r", "dataset": {"type": "digits"}, "model": {"architecture": "mlp"}}
        with session_factory(settings)() as session:
            jobs = [Job(spec=spec, status=JobStatus.QUEUED, attempt=0, max_attempts=3,
                        created_at=long_ago, enqueued_at=None if i < NEVER_SENT else long_ago)
                    for i in range(JOBS)]
            session.add_all(jobs)
            session.commit()
            ids = [j.id for j in jobs]
        sender = producer(settings)
        for job_id in ids[NEVER_SENT + LOST:]:  # the others were never sent, or lost by the broker
            sender.send_task(TRAIN_TASK, args=[job_id], queue=settings.queue_name)

        env = {k: v for k, v in os.environ.items() if not k.startswith("DLJOBS_")}
        env.update(DLJOBS_DATABASE_URL=db_url, DLJOBS_BROKER_URL=redis_url, DLJOBS_DATA_DIR=str(tmp_path),
                   DLJOBS_QUEUE_NAME=settings.queue_name)
        reconcilers = [subprocess.Popen([sys.executable, "-c", RECONCILER, str(RUN_S)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for _ in range(2)]
        outputs = [r.communicate(timeout=RUN_S + 60) for r in reconcilers]
        assert all(r.returncode == 0 for r in reconcilers), outputs
        passes, sent = zip(*(map(int, out.split()) for out, _err in outputs))

        client = redis.Redis.from_url(redis_url)
        per_job = collections.Counter(message_job_id(json.loads(raw)) for name in redis_queue_lists(settings.queue_name)
                                      for raw in client.lrange(name, 0, -1))  # every priority's list
        client.close()
    print(f"reconcile passes {passes}, jobs sent {sent}")
    assert sum(passes) >= RUN_S  # both ran all along (a pass skipped for the lock counts too)
    assert sum(sent) == NEVER_SENT + LOST  # exactly the jobs without a message, once
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}


def test_on_amqp_reconcile_sends_only_the_missing_number_oldest_first(tmp_path):
    """AMQP shows only how many messages wait: the job never sent, then the oldest others
    up to the number of queued jobs without a message."""
    from tests.faults.support import RABBITMQ_URL, delete_amqp_queue, rabbitmq_available

    require_service(rabbitmq_available(), "RabbitMQ on 127.0.0.1:5672")
    settings = Settings(data_dir=tmp_path, broker_url=RABBITMQ_URL, queue_name=f"reconcile-{uuid.uuid4().hex[:10]}")
    upgrade(settings.effective_database_url)
    long_ago = utcnow() - timedelta(minutes=5)
    spec = {"name": "r", "dataset": {"type": "digits"}, "model": {"architecture": "mlp"}}
    with session_factory(settings)() as session:
        jobs = [Job(spec=spec, status=JobStatus.QUEUED, attempt=0, max_attempts=3,
                    created_at=long_ago + timedelta(seconds=i), enqueued_at=None if i == 4 else long_ago)
                for i in range(5)]
        session.add_all(jobs)
        session.commit()
        ids = [j.id for j in jobs]
    try:
        for job_id in ids[2:4]:  # ids[0] and ids[1] lost their messages, ids[4] was never sent
            producer(settings).send_task(TRAIN_TASK, args=[job_id], queue=settings.queue_name)
        sent = jobstore.reconcile_queue(settings, older_than_s=1)
        assert sorted(sent) == sorted([ids[4], ids[0], ids[1]])
        assert jobstore.reconcile_queue(settings, older_than_s=1) == []  # five messages for five jobs
    finally:
        delete_amqp_queue(settings)
