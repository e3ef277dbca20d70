"""One side's training step timed in a process where the other library is not even imported.

``pool_check`` in bench/__main__.py compares this with the interleaved figure of the same
run: PyTorch's OpenMP threads and NumPy's OpenBLAS threads both spin a while after a
parallel region before they sleep, so two pools in one process could slow each other
where the rounds switch sides.  ``python -m bench.alone SIDE NETWORK THREADS ROUNDS ROUND_S``
prints the median milliseconds per step.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(side: str, name: str, n_threads: int, rounds: int, round_s: float) -> float:
    from bench import networks, timing

    (network,) = networks.select([name])
    setup = networks.setup_dlcore(network)
    if side == "torch":
        # the twin is made from the dlcore stack (its weights), but no dlcore step runs here
        from bench.twins import torch_twin
        from dlcore.layout import shape_to_internal

        module, _ = torch_twin(setup.net, shape_to_internal(network.sample_shape))
        step = networks.torch_step(module, setup.x, setup.y)
    else:
        step = setup.step
    with timing.threads(n_threads, torch_too=side == "torch"):
        count = timing.steps_for(step, round_s)
        return 1e3 * statistics.median(timing.block(step, count) for _ in range(rounds))


def median_ms(side: str, name: str, n_threads: int, rounds: int, round_s: float, timeout_s: float = 180) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "bench.alone", side, name, str(n_threads), str(rounds), str(round_s)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench.alone {side} {name}: {done.stderr[-2000:]}")
    return round(json.loads(done.stdout.strip().splitlines()[-1]), 3)


if __name__ == "__main__":
    side, name, n, rounds, round_s = sys.argv[1:6]
    print(json.dumps(measure(side, name, int(n), int(rounds), float(round_s))))
