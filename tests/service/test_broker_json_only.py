"""Workers accept JSON messages only: a pickled task message put in the real Redis queue
is refused unread (a pickle that ran would create a marker file) and not left to retry."""

from __future__ import annotations

import time

import pytest
import redis

from dljobs.broker import TRAIN_TASK, producer
from tests.faults.support import Workers, backend, worker_env

pytestmark = pytest.mark.service


class MarkerOnUnpickle:
    """Unpickling this creates a file: the proof a pickle was executed."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_message_is_refused_never_run(tmp_path):
    marker = tmp_path / "pickle-ran"
    with backend("redis", tmp_path) as settings:
        workers = Workers(tmp_path, worker_env(settings))
        try:
            workers.start("w1")
            workers.wait_ready("w1")
            # An attacker with access to the broker sends a pickle, not what the API sends.
            producer(settings).send_task(TRAIN_TASK, args=[MarkerOnUnpickle(str(marker))],
                                         queue=settings.queue_name, serializer="pickle")
            deadline = time.monotonic() + 30
            while "Refusing to deserialize" not in workers.log("w1") and time.monotonic() < deadline:
                time.sleep(0.2)
            log = workers.log("w1")
            client = redis.Redis.from_url(settings.broker_url)
            left = client.llen(settings.queue_name)
            client.close()
        finally:
            workers.stop()
    assert "Refusing to deserialize untrusted content of type pickle" in log, log[-3000:]
    assert not marker.exists()
    assert left == 0  # dropped, not put back for another try
