"""The Celery app of the training workers, built from ``DLJOBS_*`` settings.

Start a worker with ``dljobs worker`` or
``celery -A workers.celery_app worker --pool prefork --concurrency 1``.
"""

from __future__ import annotations

import logging

from celery.signals import worker_init, worker_process_init, worker_ready

from dljobs.broker import make_celery
from dljobs.settings import get_settings

log = logging.getLogger(__name__)

settings = get_settings()
app = make_celery(settings, main="workers")
app.conf.imports = ("workers.tasks",)
celery = app  # `celery -A workers.celery_app` finds either name


def limit_blas_threads() -> None:
    """One BLAS pool of DLJOBS_BLAS_THREADS per process: N workers never oversubscribe cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=settings.blas_threads)


@worker_init.connect
def _on_worker_init(**_kwargs) -> None:
    limit_blas_threads()  # the solo pool trains in this process


@worker_process_init.connect
def _on_worker_process_init(**_kwargs) -> None:
    # A forked pool child must not share the parent's database connections.
    from dljobs.db import session as db_session

    for engine in db_session._engines.values():
        engine.dispose(close=False)
    limit_blas_threads()


@worker_ready.connect
def _on_worker_ready(**_kwargs) -> None:
    # The database is the source of truth: re-send jobs the broker may have lost.
    from dljobs.jobstore import reconcile_queue

    try:
        sent = reconcile_queue(settings)
        if sent:
            log.info("reconcile: sent %d queued job(s) again", len(sent))
    except Exception:
        log.warning("reconcile at worker start failed", exc_info=True)
