"""The Celery configuration both sides share: the API sends with it, the workers consume.

The API never imports ``workers``: it sends the task by name (``dljobs.train_job``)
through a producer-only Celery app built here from the same settings.
"""

from __future__ import annotations

from celery import Celery

from dljobs.settings import Settings

TRAIN_TASK = "dljobs.train_job"

#: How often an idle worker lists the embedded transport's queue folder (seconds).  At
#: kombu's 0.2 s a job waited 136 ms p50 to start; each poll is one directory listing.
EMBEDDED_POLLING_INTERVAL_S = 0.02

_producers: dict[tuple[str, str], Celery] = {}


def celery_config(settings: Settings) -> dict:
    """Celery settings: late ack, requeue on a lost worker, prefetch 1, no results."""
    transport_options: dict = {"visibility_timeout": settings.visibility_timeout_s}
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
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": settings.queue_name,
        "task_routes": {TRAIN_TASK: {"queue": settings.queue_name}},
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "accept_content": ["json"],
        "task_serializer": "json",
    }


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
