"""How `make bench` times things: the sgemm peak, and dlcore against PyTorch in rounds.

Thread counts: NumPy's BLAS is limited with threadpoolctl (``user_api="blas"``; dlcore's
own pool, ``dlcore.parallel``, follows the BLAS's live thread count), PyTorch with
``torch.set_num_threads``.  Each side gets the same count; the other side's pool is idle
while one side runs (see ``pool_check`` in bench/__main__.py for the measurement that
their pools do not slow each other).

Rounds: both sides are warmed up, then each round times one block of steps of each side
(the order alternates round by round, so neither always runs on a cache the other has
just warmed or spun down); a block runs as many steps as fill about ``round_s``.  A
round's figure is the block's time per step; the median and the best of the rounds are
reported.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


@contextlib.contextmanager
def threads(n: int, torch_too: bool = True) -> Iterator[None]:
    """NumPy's BLAS (and dlcore's pool) and PyTorch's intra-op pool at ``n`` threads."""
    from threadpoolctl import threadpool_limits

    previous = None
    if torch_too:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def sgemm_gflops(n_threads: int, size: int = 1536, repeat: int = 5) -> float:
    """Best float32 GEMM rate through NumPy's BLAS at ``n_threads``, in GFLOP/s."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    out = np.empty((size, size), np.float32)
    with threadpool_limits(limits=n_threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm: the BLAS's threads and buffers
        best = min(_once(lambda: np.matmul(a, b, out=out)) for _ in range(repeat))
    return 2 * size**3 / best / 1e9


def _once(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def steps_for(step: Callable[[], None], round_s: float, warmup: int = 3) -> int:
    """Warm ``step`` up and return how many steps fill about ``round_s``."""
    for _ in range(warmup):
        step()
    one = min(_once(step) for _ in range(2))
    return max(1, int(round_s / max(one, 1e-6)))


def block(step: Callable[[], None], count: int) -> float:
    """Seconds per step over ``count`` consecutive steps."""
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count


def interleaved(steps: dict[str, Callable[[], None] | None], rounds: int, round_s: float) -> dict[str, dict]:
    """{side: {"median_ms", "best_ms", "rounds_ms"}} of the sides with a step, in alternating rounds."""
    live = {side: step for side, step in steps.items() if step is not None}
    counts = {side: steps_for(step, round_s) for side, step in live.items()}
    per_round: dict[str, list[float]] = {side: [] for side in live}
    order = list(live)
    for r in range(rounds):
        for side in order if r % 2 == 0 else order[::-1]:
            per_round[side].append(block(live[side], counts[side]))
    return {
        side: {
            "median_ms": 1e3 * statistics.median(times),
            "best_ms": 1e3 * min(times),
            "rounds_ms": [round(1e3 * t, 3) for t in times],
        }
        for side, times in per_round.items()
    }
