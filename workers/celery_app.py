"""The Celery app of the training workers, built from ``DLJOBS_*`` settings.

Start a worker with ``dljobs worker`` or
``celery -A workers.celery_app worker --pool prefork --concurrency 1``.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading

from celery.signals import worker_process_init, worker_ready, worker_shutdown, worker_shutting_down
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from threadpoolctl import threadpool_limits

from dljobs import sweeps
from dljobs.broker import make_celery
from dljobs.db import session as db_session
from dljobs.jobstore import reconcile_queue
from dljobs.processes import children_of
from dljobs.runner import SHUTDOWN
from dljobs.settings import get_settings

log = logging.getLogger(__name__)

settings = get_settings()
app = make_celery(settings, main="workers")
app.conf.imports = ("workers.tasks",)
celery = app  # `celery -A workers.celery_app` finds either name


_blas_limited_in: int | None = None  # the pid whose BLAS pools limit_blas_threads has sized


def limit_blas_threads() -> None:
    """One BLAS pool of DLJOBS_BLAS_THREADS in this process: N workers never oversubscribe cores.

    threadpoolctl reaches only the BLAS libraries already loaded, so the task calls this
    where it trains, once NumPy is imported (once per process: later calls return at
    once).  The environment ``import workers`` set does the same for libraries loaded
    after it; this covers a NumPy some other import loaded first.
    """
    global _blas_limited_in
    if _blas_limited_in == os.getpid():
        return
    threadpool_limits(limits=settings.blas_threads)
    _blas_limited_in = os.getpid()


#: What the main process sends its pool children on a shutdown: their running job is handed
#: back (SIGUSR1 is billiard's soft time limit, so not that one).
HANDBACK_SIGNAL = signal.SIGUSR2


@worker_process_init.connect
def _on_worker_process_init(**_kwargs) -> None:
    # A forked pool child must not share the parent's database connections.
    for engine in db_session._engines.values():
        engine.dispose(close=False)


_memory_limited_in: int | None = None  # the pid limit_memory has limited


def limit_memory() -> None:
    """Cap this pool process's data segment at DLJOBS_WORKER_MEMORY_MB (once per process).

    RLIMIT_DATA, not RLIMIT_AS: OpenBLAS threads reserve address space they never touch,
    which RLIMIT_AS would count.  Past the limit an allocation raises MemoryError, which
    fails the job (memory_limit) instead of the kernel's OOM killer ending the process,
    which would look like a lost worker and be retried into the same wall.
    """
    global _memory_limited_in
    if _memory_limited_in == os.getpid():
        return
    limit = int(settings.worker_memory_mb) * 2**20
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    _memory_limited_in = os.getpid()


def listen_for_handback() -> None:
    """Turn HANDBACK_SIGNAL into the runner's SHUTDOWN flag in this pool child.

    The task calls it where it starts: billiard installs its own exit handler on every
    terminating signal *after* worker_process_init, so a handler set there would be lost.
    """
    signal.signal(HANDBACK_SIGNAL, lambda _signum, _frame: SHUTDOWN.set())


@worker_shutting_down.connect
def _on_worker_shutting_down(**_kwargs) -> None:
    # A warm shutdown waits for the running task: ask it to checkpoint and hand its job back
    # now instead of training to the end (or until the supervisor kills it).
    for pid in children_of(os.getpid()):
        try:
            os.kill(pid, HANDBACK_SIGNAL)
        except ProcessLookupError:
            pass


def reconcile_forever(stop: threading.Event) -> None:
    """The database is the source of truth: re-send jobs the broker may have lost
    (a wiped Redis, a message dropped while its job looked alive), now and periodically."""

    while True:
        try:
            sent = reconcile_queue(settings)
            if sent:
                log.info("reconcile: sent %d job(s) again", len(sent))
        except Exception:
            log.warning("reconcile failed", exc_info=True)
        if stop.wait(max(settings.reconcile_after_s, 1.0)):
            return


_reconcile_stop = threading.Event()


def tick_sweeps_forever(stop: threading.Event) -> None:
    """Sweeps advance on their trials' events; this catches up whatever an event missed (a
    process killed, a restart) every DLJOBS_SWEEP_TICK_S.  The state is in the database."""
    while not stop.wait(settings.sweep_tick_s):
        try:
            sweeps.tick(settings)
        except Exception:
            log.warning("sweep tick failed", exc_info=True)


@worker_ready.connect
def _on_worker_ready(**_kwargs) -> None:
    threading.Thread(
        target=reconcile_forever, args=(_reconcile_stop,), name="dljobs-reconcile", daemon=True
    ).start()
    threading.Thread(
        target=tick_sweeps_forever, args=(_reconcile_stop,), name="dljobs-sweeps", daemon=True
    ).start()


@worker_shutdown.connect
def _on_worker_shutdown(**_kwargs) -> None:
    _reconcile_stop.set()
    _database_watch_stop.set()


# ------------------------------------------------- a worker cut off from its database

#: Seconds between two probes of the database by a worker's watchdog.
DATABASE_PROBE_INTERVAL_S = 2.0

_database_watch_stop = threading.Event()


def database_reachable(engine) -> bool:
    """One fresh connection and ``SELECT 1``: bounded by the connect timeout, so a silent
    partition answers False within seconds rather than never."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except DBAPIError:  # refused, reset, timed out: unreachable
        return False


def watch_database(consumer, stop: threading.Event, interval_s: float = DATABASE_PROBE_INTERVAL_S) -> None:
    """Stop consuming while the database is unreachable, and consume again once it answers.

    A worker that cannot claim would otherwise take message after message from the queue
    another worker could run.  The consumer's own loop makes the change (``call_soon``,
    as the remote-control commands do), so no broker call comes from this thread.
    """
    engine = db_session.make_engine(settings.effective_database_url, poolclass=NullPool)
    queue = settings.queue_name
    consuming = True
    try:
        while not stop.wait(interval_s):
            reachable = database_reachable(engine)
            if consuming and not reachable:
                log.warning("database unreachable: no longer consuming from %s", queue)
                consumer.call_soon(consumer.cancel_task_queue, queue)
                consuming = False
            elif not consuming and reachable:
                log.warning("database reachable again: consuming from %s", queue)
                consumer.call_soon(consumer.add_task_queue, queue)
                consuming = True
    finally:
        engine.dispose()


@worker_ready.connect
def _on_worker_ready_watch_database(sender=None, **_kwargs) -> None:
    # SQLite is a file on this machine: there is no link to lose.
    if sender is None or settings.effective_database_url.startswith("sqlite"):
        return
    threading.Thread(
        target=watch_database, args=(sender, _database_watch_stop), name="dljobs-db-watch", daemon=True
    ).start()
