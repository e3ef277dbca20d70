"""The Celery configuration both sides share: the API sends with it, the workers consume.

The API never imports ``workers``: it sends the task by name (``dljobs.train_job``)
through a producer-only Celery app built here from the same settings.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import dataclass

from celery import Celery
from kombu.transport import filesystem as kombu_filesystem
from kombu.utils.json import dumps as kombu_dumps

from dljobs.lifecycle import MAX_PRIORITY
from dljobs.settings import Settings

TRAIN_TASK = "dljobs.train_job"

#: How often an idle worker lists the embedded transport's queue folder (seconds).  At
#: kombu's 0.2 s a job waited 136 ms p50 to start; each poll is one directory listing.
EMBEDDED_POLLING_INTERVAL_S = 0.02

_producers: dict[tuple[str, str], Celery] = {}


def celery_config(settings: Settings) -> dict:
    """Celery settings: late ack, requeue on a lost worker, prefetch 1, no results."""
    transport_options: dict = {"visibility_timeout": settings.visibility_timeout_s}
    url = settings.effective_broker_url
    extra: dict = {}
    if url.startswith(("redis://", "rediss://")):
        # one list per priority (kombu's default folds ten into four), the higher lists read first
        transport_options.update(priority_steps=list(REDIS_PRIORITY_STEPS), queue_order_strategy="priority")
    elif url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # RabbitMQ orders a queue by priority only when it is declared with x-max-priority
        from kombu import Queue  # deferred: only AMQP declares its queue here

        extra["task_queues"] = [Queue(settings.queue_name, queue_arguments={"x-max-priority": MAX_PRIORITY})]
        extra["task_queue_max_priority"] = MAX_PRIORITY
    if settings.uses_filesystem_broker:
        settings.ensure_dirs()
        queue_dir = str(settings.broker_dir / "out")
        transport_options.update(
            data_folder_in=queue_dir,
            data_folder_out=queue_dir,
            processed_folder=str(settings.broker_dir / "processed"),
            # kombu's default is ./control in the current directory: keep it with the data.
            control_folder=str(settings.broker_dir / "control"),
            store_processed=False,
            polling_interval=EMBEDDED_POLLING_INTERVAL_S,
        )
        # kombu's own _put creates the file, then writes it: a worker polling at that moment
        # took it empty and died on the JSON (seen once workers began sending trials, sweeps)
        extra["broker_transport"] = f"{__name__}:AtomicFilesystemTransport"
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A pool process killed mid-task is reported lost (and its message requeued) after
        # this wait for a result it may have sent; there are no results here, so wait 1 s.
        "worker_lost_wait": 1.0,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": settings.queue_name,
        "task_routes": {TRAIN_TASK: {"queue": settings.queue_name}},
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "accept_content": ["json"],
        "task_serializer": "json",
        **extra,
    }


#: kombu's Redis transport keeps one list per step; with every step, each priority is its own.
REDIS_PRIORITY_STEPS = tuple(range(MAX_PRIORITY + 1))


def message_priority(settings: Settings, priority: int | None) -> int | None:
    """The broker message priority of a job's priority (0 lowest, 9 highest), or None.

    RabbitMQ reads higher numbers first; kombu's Redis transport reads its lists from
    step 0 up, so there the number is turned around.  The filesystem transport has no
    priorities at all (see docs/sweeps.md).
    """
    if priority is None:
        return None
    url = settings.effective_broker_url
    if url.startswith(("redis://", "rediss://")):
        return MAX_PRIORITY - int(priority)
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return int(priority)
    return None


class AtomicFilesystemChannel(kombu_filesystem.Channel):
    """kombu's filesystem channel, with a message file that appears whole or not at all.

    It is written under a name the readers skip (``.<name>.part``: ``_get`` keeps files whose
    name after the first dot is ``<queue>.msg``) and renamed into place, one atomic step on one
    filesystem; the name keeps kombu's ``<ms>_<uuid>.<queue>.msg`` (read in name order).
    """

    def _put(self, queue, payload, **kwargs):
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as file:
                file.write(kombu_dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise kombu_filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicFilesystemTransport(kombu_filesystem.Transport):
    """The filesystem transport with :class:`AtomicFilesystemChannel` (``broker_transport``)."""

    Channel = AtomicFilesystemChannel


def make_celery(settings: Settings, main: str = "dljobs") -> Celery:
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def producer(settings: Settings) -> Celery:
    """A cached producer app for sending tasks from the API (or any process)."""
    key = (settings.effective_broker_url, str(settings.data_path))
    app = _producers.get(key)
    if app is None:
        app = _producers[key] = make_celery(settings, main="dljobs-producer")
    return app


# ------------------------------------------------------------- what the broker holds


@dataclass(frozen=True)
class BrokerHoldings:
    """What the broker holds for the training queue, as well as the transport lets us see.

    ``job_ids``: the jobs with a message waiting, or delivered within ``recent_s`` and
    not yet acknowledged (being claimed, or a retry counting down); exact, on Redis and
    the filesystem transport.  ``count``: only the number of waiting messages (AMQP).
    Neither: the transport cannot be inspected.
    """

    job_ids: frozenset[str] | None = None
    count: int | None = None


#: kombu's Redis transport keeps priorities 3, 6 and 9 in lists named queue + sep + priority.
_REDIS_PRIORITY_SEP = "\x06\x16"
_REDIS_PRIORITIES = tuple(range(10))  # REDIS_PRIORITY_STEPS (all ten since sweeps brought priorities)


def redis_queue_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue``'s messages in, one per priority step, read first to last."""
    return [queue if step == 0 else f"{queue}{_REDIS_PRIORITY_SEP}{step}" for step in _REDIS_PRIORITIES]


def message_job_id(payload: dict) -> str | None:
    """The job id a kombu message (its JSON envelope) carries for ``TRAIN_TASK``, or None."""
    headers = payload.get("headers") or {}
    if headers.get("task") != TRAIN_TASK:
        return None
    body = payload.get("body")
    try:
        if (payload.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None


def _redis_holdings(settings: Settings, recent_s: float) -> BrokerHoldings:
    # deferred: only a Redis broker needs the client library loaded
    import redis

    client = redis.Redis.from_url(settings.effective_broker_url, socket_timeout=10)
    try:
        queue = settings.queue_name
        ids: set[str] = set()
        for name in redis_queue_lists(queue):
            for raw in client.lrange(name, 0, -1):
                job_id = message_job_id(json.loads(raw))
                if job_id:
                    ids.add(job_id)
        # Delivered, unacknowledged messages: a recent one is being claimed (or is a retry
        # counting down); an old one is a running job's own message, or one a dead worker
        # reserved that Redis would give back only after the visibility timeout.
        since = time.time() - recent_s
        recent_tags = {t.decode() for t in client.zrangebyscore("unacked_index", since, "+inf")}
        if recent_tags:
            for tag, raw in client.hscan_iter("unacked"):
                if tag.decode() in recent_tags:
                    message = json.loads(raw)[0]
                    job_id = message_job_id(message)
                    if job_id:
                        ids.add(job_id)
        return BrokerHoldings(job_ids=frozenset(ids))
    finally:
        client.close()


def _filesystem_holdings(settings: Settings) -> BrokerHoldings:
    ids: set[str] = set()
    folder = settings.broker_dir / "out"
    suffix = f".{settings.queue_name}.msg"
    for path in folder.glob(f"*{suffix}"):
        try:
            job_id = message_job_id(json.loads(path.read_bytes()))
        except (OSError, ValueError):  # taken by a worker while we listed the folder
            continue
        if job_id:
            ids.add(job_id)
    return BrokerHoldings(job_ids=frozenset(ids))


def _amqp_holdings(settings: Settings) -> BrokerHoldings:
    # AMQP shows no message to a client that does not consume it: only how many wait.
    with producer(settings).connection_for_write() as conn:
        channel = conn.default_channel
        _name, count, _consumers = channel.queue_declare(queue=settings.queue_name, passive=True)
    return BrokerHoldings(count=int(count))


def broker_holdings(settings: Settings, recent_s: float = 30.0) -> BrokerHoldings:
    """What the broker holds for ``settings.queue_name`` (see :class:`BrokerHoldings`).

    Raises when the broker cannot be reached: the caller then sends nothing it cannot
    show to be missing.
    """
    url = settings.effective_broker_url
    if url.startswith(("redis://", "rediss://")):
        return _redis_holdings(settings, recent_s)
    if settings.uses_filesystem_broker:
        return _filesystem_holdings(settings)
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return _amqp_holdings(settings)
    return BrokerHoldings()
