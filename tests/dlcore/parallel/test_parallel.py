"""dlcore's thread pool: sized by the BLAS thread count, inline at one thread, safe under concurrency.

Real threads and the real BLAS (threadpoolctl sets its thread count, as the service and
the benchmark do); nothing is timed here, speed lives in bench/.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from dlcore import parallel
from dlcore.parallel import batch_chunks, parallel_over_batch, thread_count


def _recorder():
    calls: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def fn(start: int, stop: int) -> None:
        with lock:
            calls.append((start, stop, threading.current_thread().name))

    return calls, fn


@pytest.mark.parametrize(("n", "parts"), [(1, 2), (2, 2), (7, 2), (64, 3), (5, 8), (10, 1)])
def test_batch_chunks_cover_the_batch_once_in_order_with_sizes_within_one(n, parts):
    chunks = batch_chunks(n, parts)
    assert chunks[0][0] == 0 and chunks[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    sizes = [stop - start for start, stop in chunks]
    assert len(chunks) == min(n, parts) and min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_thread_count_is_the_blas_thread_count_and_follows_threadpool_limits():
    with threadpool_limits(limits=1, user_api="blas"):
        assert thread_count() == 1
    with threadpool_limits(limits=2, user_api="blas"):
        assert thread_count() == 2


def test_one_blas_thread_runs_the_whole_batch_inline_in_the_caller():
    calls, fn = _recorder()
    with threadpool_limits(limits=1, user_api="blas"):
        parallel_over_batch(fn, 64)
    assert calls == [(0, 64, threading.current_thread().name)]


def test_two_blas_threads_split_the_batch_over_two_threads():
    calls, fn = _recorder()
    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(fn, 9)
    assert sorted((start, stop) for start, stop, _ in calls) == [(0, 5), (5, 9)]
    names = {name for _, _, name in calls}
    assert len(names) == 2 and threading.current_thread().name in names


def test_small_work_and_tiny_batches_run_inline():
    calls, fn = _recorder()
    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(fn, 64, bytes_per_item=16)  # 1 KB in all: not worth a hand-off
        parallel_over_batch(fn, 1)
        parallel_over_batch(fn, 0)
    assert [(start, stop) for start, stop, _ in calls] == [(0, 64), (0, 1)]


def test_pieces_write_the_same_result_as_one_pass():
    x = np.random.default_rng(0).standard_normal((37, 16, 16, 8)).astype(np.float32)
    out = np.empty_like(x)

    def relu_rows(start, stop):
        np.maximum(x[start:stop], 0, out=out[start:stop])

    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(relu_rows, len(x), bytes_per_item=x[0].nbytes)
    np.testing.assert_array_equal(out, np.maximum(x, 0))


def test_a_failing_piece_raises_in_the_caller_after_every_piece_ended():
    ended = []

    def fn(start, stop):
        if start == 0:
            raise ValueError("piece 0 failed")
        ended.append((start, stop))

    with threadpool_limits(limits=2, user_api="blas"), pytest.raises(ValueError, match="piece 0 failed"):
        parallel_over_batch(fn, 10)
    assert ended == [(5, 10)]


def test_a_call_from_inside_a_piece_runs_inline_so_pool_threads_never_wait_on_the_pool():
    inner: list = []
    lock = threading.Lock()

    def outer(start, stop):
        calls, fn = _recorder()
        parallel_over_batch(fn, 8)
        with lock:
            inner.append(calls)

    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(outer, 4)
    assert len(inner) == 2
    assert all(len(calls) == 1 and calls[0][:2] == (0, 8) for calls in inner)


def test_concurrent_callers_each_get_their_own_pieces_done():
    threads, calls_each = 8, 30
    results: dict[int, list] = {}
    errors: list = []
    start = threading.Barrier(threads)

    def caller(t: int) -> None:
        try:
            start.wait()
            sums = []
            for i in range(calls_each):
                x = np.full((16 + t, 64), float(t * 100 + i), dtype=np.float64)
                out = np.zeros(len(x))

                def row_sums(a, b, x=x, out=out):
                    out[a:b] = x[a:b].sum(axis=1)

                parallel_over_batch(row_sums, len(x))
                sums.append(out.sum())
            results[t] = sums
        except Exception as exc:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(exc)

    with threadpool_limits(limits=2, user_api="blas"):
        workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert not errors
    for t in range(threads):
        assert results[t] == [(16 + t) * 64 * float(t * 100 + i) for i in range(calls_each)]


def _child_splits(queue) -> None:
    calls, fn = _recorder()
    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(fn, 6)
    queue.put(sorted((start, stop) for start, stop, _ in calls))


def test_a_forked_child_makes_its_own_pool():
    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(lambda a, b: None, 4)  # the parent's pool exists before the fork
    assert parallel._executor is not None
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_splits, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == [(0, 3), (3, 6)]


def test_callers_that_grow_the_pool_while_others_submit_never_find_it_shut_down(monkeypatch):
    """Thread counts that differ from call to call (a threadpool_limits block, a small batch
    first) grow the pool while other callers hold the smaller one and are about to submit."""
    monkeypatch.setattr(parallel, "_executor", None)  # start small, so the callers grow it
    monkeypatch.setattr(parallel, "_executor_workers", 0)
    errors: list[BaseException] = []

    def caller(k: int) -> None:
        try:
            for t in range(200):
                parallel.parallel_over_batch(lambda i, j: None, 8, threads=2 + (k + t) % 6)
        except BaseException as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return min(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_own_cores_holds_the_blas_at_one_thread_and_keeps_the_count_for_the_pool():
    with threadpool_limits(limits=2, user_api="blas"):
        with parallel.own_cores():
            assert _blas_threads() == 1 and thread_count() == 2
            with parallel.own_cores():  # re-entrant, as nested Sequentials enter it
                assert _blas_threads() == 1 and thread_count() == 2
            assert _blas_threads() == 1
        assert _blas_threads() == 2 and thread_count() == 2


def test_own_cores_gives_the_blas_back_its_count_after_the_last_of_concurrent_callers():
    entered, leave = threading.Barrier(3), threading.Event()
    seen: list[tuple[int, int]] = []

    def caller():
        with parallel.own_cores():
            entered.wait()
            leave.wait()
            seen.append((_blas_threads(), thread_count()))

    with threadpool_limits(limits=2, user_api="blas"):
        threads = [threading.Thread(target=caller) for _ in range(2)]
        for th in threads:
            th.start()
        try:
            entered.wait(timeout=10)
            inside = (_blas_threads(), thread_count())  # seen from a thread outside the block
        finally:
            leave.set()
            for th in threads:
                th.join()
        assert inside == (1, 2) and seen == [(1, 2), (1, 2)]
        assert _blas_threads() == 2


def test_own_cores_at_one_thread_leaves_the_blas_alone():
    with threadpool_limits(limits=1, user_api="blas"), parallel.own_cores():
        assert _blas_threads() == 1 and thread_count() == 1 and parallel._cores_depth == 0


def test_the_pieces_of_a_split_run_with_a_one_thread_blas_and_know_their_index():
    seen: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def fn(start: int, stop: int) -> None:
        with lock:
            seen[parallel.piece_index()] = (start, _blas_threads())

    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(fn, 8)
        assert _blas_threads() == 2
    assert seen == {0: (0, 1), 1: (4, 1)} and parallel.piece_index() == 0


def test_each_piece_of_a_split_gets_its_own_shared_scratch_buffer():
    from dlcore.workspace import Workspace

    workspace, views = Workspace(), {}
    lock = threading.Lock()

    def fn(start: int, stop: int) -> None:
        view = workspace.shared("test.cols", (stop - start, 3), np.float32)
        view.fill(start)
        with lock:
            views[start] = view

    with threadpool_limits(limits=2, user_api="blas"):
        parallel_over_batch(fn, 6)
    assert not np.shares_memory(views[0], views[3])
    assert (views[0] == 0).all() and (views[3] == 3).all()
