"""dlcore's own small thread pool, for the work around the GEMMs (copies, masks, ufunc passes).

The GEMMs already run on every BLAS thread; what surrounds them (im2col window copies,
pooling reductions and masks, batchnorm's elementwise passes) would run on one core.
NumPy releases the GIL in copies and in ufunc loops over large arrays, so splitting
such an operation over the batch axis and running the pieces on a few Python threads
uses the other cores.

How many threads: exactly as many as the BLAS is set to use (:func:`thread_count`),
read from the BLAS itself through threadpoolctl.  That keeps one source for the
thread count of a process: ``DLJOBS_BLAS_THREADS`` (which the service turns into
``OPENBLAS_NUM_THREADS`` and a ``threadpool_limits`` call), ``OPENBLAS_NUM_THREADS``
set by hand, or a ``threadpoolctl.threadpool_limits(n)`` block in a benchmark all
size this pool too.  A worker with one BLAS thread therefore keeps using one core:
with a count of 1 (or without threadpoolctl installed) every call runs inline in the
caller, with no pool, no thread and no lock.

Who drives the cores: dlcore, not the BLAS.  Inside :func:`own_cores` (every
``Sequential`` forward and backward, and every split) the BLAS is held at one thread
and a layer splits its whole work, GEMMs included, over the batch: each piece builds
its own columns and multiplies them on its own core.  Left to the BLAS, the GEMMs of
a small network ran on two threads while everything around them ran on one, and
OpenBLAS's idle threads spin for a while after each GEMM, taking the core the pool's
next piece needed: the conv layers of ``cnn`` ran 1.0-1.6x their one-thread time on
two threads; split by dlcore with a one-thread BLAS, 0.55x.

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

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

#: Below this many bytes of work per call the pieces cost more to hand out than they save.
#: Handing a piece to a pool thread and waiting for it costs 0.1-0.2 ms on a virtual machine
#: (a wake-up each way), and two cores there move little more memory than one: a relu of
#: 8 MB split in two took 1.9 ms against 1.7 ms inline.  At 4 MB (against 256 KB) resnet_tiny's
#: two-thread step took 120 ms instead of 159 (AMD EPYC, 2 cores).
MIN_PARALLEL_BYTES = 4 << 20

#: Below this many floating-point operations a split GEMM costs more than it saves: a
#: hand-off to a pool thread and back costs 0.1-0.2 ms on a virtual machine (a wake-up
#: each way), the time of some 10 MFLOP on one core.
MIN_PARALLEL_FLOPS = 40_000_000

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0
_blas_controllers: list | None = None
_blas_count_functions: list | None = None  # [(read count, set count)] per BLAS library
_in_pool = threading.local()
_cores_lock = threading.Lock()
_cores_depth = 0  # calls inside own_cores(), in every thread
_cores_budget = 1  # the BLAS's thread count when the first of them entered


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


def _openblas_function(lib, name: str):
    """OpenBLAS's own C function ``name`` (its prefix and suffix as threadpoolctl found them),
    or None for another BLAS, an OpenMP build, or a threadpoolctl without the helper."""
    if getattr(lib, "internal_api", None) != "openblas" or getattr(lib, "threading_layer", None) == "openmp":
        return None
    try:
        return lib._get_symbol(name)
    except Exception:  # noqa: BLE001 - threadpoolctl's private helper changed: use its public API
        return None


def _count_reader(lib) -> Callable[[], int | None]:
    """A function returning ``lib``'s thread count: OpenBLAS's own C getter where threadpoolctl
    exposes it (a fifth of the time of ``lib.num_threads``, which looks the symbol up on every
    read; an MLP step at batch 8 reads it a dozen times), else threadpoolctl's getter."""
    return _openblas_function(lib, "openblas_get_num_threads") or lib.get_num_threads


def _count_setter(lib) -> Callable[[int], object]:
    """A function setting ``lib``'s thread count from any thread.

    OpenBLAS's C setter where it can be had: threadpoolctl (3.8) lets only the first Python
    thread that set OpenBLAS's limits set them again and silently ignores the others, but
    :func:`own_cores` is entered from whichever thread trains or predicts, and it already
    counts its callers under one lock.
    """
    return _openblas_function(lib, "openblas_set_num_threads") or lib.set_num_threads


def _count_functions() -> list[tuple[Callable[[], int | None], Callable[[int], object]]]:
    """(read, set) of each BLAS library's thread count, looked up once per process."""
    global _blas_count_functions
    if _blas_count_functions is None:
        _blas_count_functions = [(_count_reader(lib), _count_setter(lib)) for lib in _blas_libraries()]
    return _blas_count_functions


def _set_blas_threads(count: int) -> None:
    for _, set_count in _count_functions():
        set_count(count)


def _blas_thread_count() -> int:
    functions = _count_functions()
    if len(functions) == 1:  # the usual process: one BLAS
        count = functions[0][0]()
        return count if isinstance(count, int) and count > 0 else 1
    counts = [read() for read, _ in functions]
    counts = [c for c in counts if isinstance(c, int) and c > 0]
    return max(1, min(counts)) if counts else 1


def thread_count() -> int:
    """Threads dlcore's pool splits work over: the BLAS's thread count (1 if unknown).

    Read live (about a microsecond), so a ``threadpool_limits`` block applies at once;
    inside :func:`own_cores`, where the BLAS is held at one thread, the count it had before.
    """
    if _cores_depth:
        return _cores_budget
    return _blas_thread_count()


@contextlib.contextmanager
def own_cores() -> Iterator[None]:
    """Hold the BLAS at one thread while dlcore's pool splits the work over :func:`thread_count` cores.

    Re-entrant and shared by concurrent callers: the first to enter sets the BLAS to one
    thread and the last to leave gives it back its count.  With one thread (the common
    case of a worker) it does nothing and takes no lock.
    """
    global _cores_depth, _cores_budget
    if not _cores_depth and _blas_thread_count() <= 1:
        yield
        return
    with _cores_lock:
        if _cores_depth == 0:
            _cores_budget = _blas_thread_count()
            _set_blas_threads(1)
        _cores_depth += 1
    try:
        yield
    finally:
        with _cores_lock:
            _cores_depth -= 1
            if _cores_depth == 0:
                _set_blas_threads(_cores_budget)


def piece_index() -> int:
    """Which piece of a :func:`parallel_over_batch` call the calling thread runs (0 outside one).

    :meth:`dlcore.workspace.Workspace.shared` keys its buffers by it, so the pieces of one
    call, running at once, never share a scratch buffer.
    """
    return getattr(_in_pool, "index", 0)


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
    # A forked child inherits the executor object but not its threads, nor the callers inside own_cores().
    global _executor, _executor_workers, _lock, _cores_lock, _cores_depth
    _executor, _executor_workers, _lock = None, 0, threading.Lock()
    if _cores_depth:
        _set_blas_threads(_cores_budget)
    _cores_lock, _cores_depth = threading.Lock(), 0


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _run_in_pool(fn: Callable[[int, int], None], start: int, stop: int, index: int) -> None:
    _in_pool.active, _in_pool.index = True, index
    try:
        fn(start, stop)
    finally:
        _in_pool.active, _in_pool.index = False, 0


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


def parallel_over_batch(
    fn: Callable[[int, int], None],
    n: int,
    *,
    bytes_per_item: int | None = None,
    flops_per_item: int | None = None,
    threads: int | None = None,
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
    - flops_per_item: for work bound by arithmetic (a GEMM per piece), its floating-point
      operations per item instead: under :data:`MIN_PARALLEL_FLOPS` in all, inline.
    - threads: pieces to use; None is :func:`thread_count`.

    Returns:
    - None. With one thread, n < 2, small work, or when called from inside a piece,
      this is exactly ``fn(0, n)`` in the calling thread.
    """
    if n <= 0:
        return
    parts = thread_count() if threads is None else int(threads)
    small = (bytes_per_item is not None and n * bytes_per_item < MIN_PARALLEL_BYTES) or (
        flops_per_item is not None and n * flops_per_item < MIN_PARALLEL_FLOPS
    )
    if parts <= 1 or n < 2 or small or getattr(_in_pool, "active", False):
        fn(0, n)
        return
    chunks = batch_chunks(n, parts)
    pool = _pool(len(chunks) - 1)
    error: BaseException | None = None
    with own_cores():
        futures: list[Future] = [
            pool.submit(_run_in_pool, fn, start, stop, index) for index, (start, stop) in enumerate(chunks[1:], 1)
        ]
        try:
            # The caller does the first piece itself: one fewer hand-off, and it is busy, not waiting.
            _run_in_pool(fn, *chunks[0], 0)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other pieces ended
            error = exc
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001 - the first failure wins; all pieces are waited for
                error = error or exc
    if error is not None:
        raise error
