"""dlcore's own small thread pool, for the work around the GEMMs (copies, masks, ufunc passes).

The GEMMs already run on every BLAS thread; what surrounds them (im2col window copies,
pooling reductions and masks, batchnorm's elementwise passes) would run on one core.
NumPy releases the GIL in copies and in ufunc loops over large arrays, so splitting
such an operation over the batch axis and running the pieces on a few Python threads
uses the other cores.

How many threads: exactly as many as the BLAS uses right now (:func:`thread_count`),
read from the BLAS itself through threadpoolctl.  That keeps one source for the
thread count of a process: ``DLJOBS_BLAS_THREADS`` (which the service turns into
``OPENBLAS_NUM_THREADS`` and a ``threadpool_limits`` call), ``OPENBLAS_NUM_THREADS``
set by hand, or a ``threadpoolctl.threadpool_limits(n)`` block in a benchmark all
size this pool too.  A worker with one BLAS thread therefore keeps using one core:
with a count of 1 (or without threadpoolctl installed) every call runs inline in the
caller, with no pool, no thread and no lock.

Safe under concurrency: several threads may call :func:`parallel_over_batch` at once
(concurrent predictions on one model); each call waits only for its own pieces.  A
piece that itself calls :func:`parallel_over_batch` runs that call inline, so pool
threads never wait on the pool.  After ``fork`` (Celery's prefork workers) the child
starts with no pool and makes its own on first use.

Example (a layer author's view)::

    def relu_into(out, x):
        def rows(start, stop):
            xp.maximum(x[start:stop], 0, out=out[start:stop])

        parallel_over_batch(rows, x.shape[0], bytes_per_item=x[0].nbytes)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

#: Below this many bytes of work per call the pieces cost more to hand out than they save
#: (handing a piece to a pool thread and waiting for it costs some tens of microseconds).
MIN_PARALLEL_BYTES = 256 * 1024

#: Bytes of the array a piece writes over and over (F*F adds into dx) that stay in a
#: core's L2 cache: :func:`cache_blocks` walks a piece in blocks of about this size.
CACHE_BLOCK_BYTES = 256 * 1024

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0
_blas_controllers: list | None = None
_in_pool = threading.local()


def _blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process ([] without threadpoolctl)."""
    global _blas_controllers
    if _blas_controllers is None:
        try:
            # Deferred: threadpoolctl is optional (the blas-info extra), absent in a bare dlcore install.
            import numpy  # noqa: F401  (loads the BLAS that threadpoolctl must see)
            from threadpoolctl import ThreadpoolController

            found = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        except Exception:  # noqa: BLE001 - no threadpoolctl, or one that fails: run inline
            found = []
        _blas_controllers = found
    return _blas_controllers


def thread_count() -> int:
    """Threads dlcore's pool splits work over: the BLAS's current thread count (1 if unknown).

    Read live (under a microsecond), so a ``threadpool_limits`` block applies at once.
    """
    counts = [lib.num_threads for lib in _blas_libraries()]
    counts = [c for c in counts if isinstance(c, int) and c > 0]
    return max(1, min(counts)) if counts else 1


def _pool(workers: int) -> ThreadPoolExecutor:
    """A shared executor with at least ``workers`` threads (grown, never shrunk: idle threads cost nothing).

    A smaller executor it replaces is left running, never shut down: another caller may have
    taken it a moment before and be about to submit to it (shutting it down made that submit
    raise). It grows only as often as the thread count does, so few are ever left.
    """
    global _executor, _executor_workers
    with _lock:
        if _executor is None or _executor_workers < workers:
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dlcore-parallel")
            _executor_workers = workers
        return _executor


def _forget_pool_after_fork() -> None:
    # A forked child inherits the executor object but not its threads.
    global _executor, _executor_workers, _lock
    _executor, _executor_workers, _lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _run_in_pool(fn: Callable[[int, int], None], start: int, stop: int) -> None:
    _in_pool.active = True
    try:
        fn(start, stop)
    finally:
        _in_pool.active = False


def batch_chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """Split range(n) into ``parts`` contiguous (start, stop) pieces whose sizes differ by at most 1."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def cache_blocks(start: int, stop: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """Split items [start, stop) into consecutive blocks of about :data:`CACHE_BLOCK_BYTES` each.

    For a piece that passes over the same output many times (one add per kernel offset):
    doing every pass on one cache-sized block before the next keeps that block in L2
    (conv2d's dx adds at 32 channels, 16x16, batch 64: about 25% less time than whole pieces).
    """
    step = max(1, CACHE_BLOCK_BYTES // max(1, bytes_per_item))
    return [(i, min(stop, i + step)) for i in range(start, stop, step)]


def parallel_over_batch(
    fn: Callable[[int, int], None], n: int, *, bytes_per_item: int | None = None, threads: int | None = None
) -> None:
    """Call ``fn(start, stop)`` over contiguous pieces of range(n), on the pool's threads at once.

    Inputs:
    - fn: does the work of items [start, stop) of the batch axis, writing its results into
      arrays the caller owns (pieces must not overlap in what they write). Its return value
      is ignored; an exception raised by any piece is raised here, after every piece ended.
    - n: batch size N (items 0 .. N-1).
    - bytes_per_item: rough bytes one item's work touches (e.g. ``x[0].nbytes``); when
      n * bytes_per_item is under :data:`MIN_PARALLEL_BYTES` the call runs inline. None:
      split whenever there is more than one thread.
    - threads: pieces to use; None is :func:`thread_count`.

    Returns:
    - None. With one thread, n < 2, small work, or when called from inside a piece,
      this is exactly ``fn(0, n)`` in the calling thread.
    """
    if n <= 0:
        return
    parts = thread_count() if threads is None else int(threads)
    small = bytes_per_item is not None and n * bytes_per_item < MIN_PARALLEL_BYTES
    if parts <= 1 or n < 2 or small or getattr(_in_pool, "active", False):
        fn(0, n)
        return
    chunks = batch_chunks(n, parts)
    pool = _pool(len(chunks) - 1)
    futures: list[Future] = [pool.submit(_run_in_pool, fn, start, stop) for start, stop in chunks[1:]]
    error: BaseException | None = None
    try:
        # The caller does the first piece itself: one fewer hand-off, and it is busy, not waiting.
        _run_in_pool(fn, *chunks[0])
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other pieces ended
        error = exc
    for future in futures:
        try:
            future.result()
        except BaseException as exc:  # noqa: BLE001 - the first failure wins; all pieces are waited for
            error = error or exc
    if error is not None:
        raise error
