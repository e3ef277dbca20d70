"""Peak memory of one side's training step, each measured in a process of its own.

Definition (``dlcore_peak_mb``, ``torch_peak_mb`` in bench/results.json): the process's
resident-set high-water mark (``VmHWM``) over building the network and running two
training steps, minus its resident set just before, after the imports and the
mini-batch are in memory, minus the growth of its file-backed resident pages
(``RssFile``) meanwhile.  The high-water mark is reset at the baseline (``5`` written to
``/proc/self/clear_refs``), so what the imports touched and freed is not counted; the
file-backed growth is library code and data paged in on first use (PyTorch's first step
touches some 100 MB of libtorch), which is not memory the step holds.  Two steps,
because the first also allocates what every later step reuses (the optimizer's
velocities, dlcore's workspace, PyTorch's gradient buffers): the peak is the larger of
the two.  The twin's weights are copied from a dlcore stack built before the baseline,
so each side is charged its own weights, gradients and activations only; before the
baseline each side runs one tiny step (a 512x512 GEMM; PyTorch a 512x512 linear layer's
forward, backward and SGD step), because the BLAS's per-thread buffers, PyTorch's thread
pool and what its first optimizer imports exist once per process whatever runs; what the
warm-up freed is given back to the system (``malloc_trim``) before the baseline.

One subprocess per side (:func:`peaks`) imports NumPy, dlcore (and PyTorch) once, then
forks one child per network and thread count, which measures from its own baseline: the
imports cost seconds each on a busy machine, a fork milliseconds.  Nothing has run a
PyTorch operation before a fork, so each child starts its own OpenMP pool.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_high_water() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give what the warm-up freed back to the system (glibc), so the step's allocations show
    in the high-water mark instead of reusing pages already resident."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _warm_runtime(side: str) -> None:
    """One tiny step through the side's runtime before the baseline: the BLAS's per-thread
    buffers (OpenBLAS, MKL), PyTorch's OpenMP pool and its lazily imported optimizer code
    exist once per process, whatever runs."""
    import numpy as np

    import dlcore.losses.softmax  # noqa: F401 RUF100 - the modules a step imports on first use
    import dlcore.optimizers.momentum  # noqa: F401

    a = np.ones((512, 512), np.float32)  # large enough that the BLAS uses every thread
    a @ a
    if side == "torch":
        import torch

        lin = torch.nn.Linear(512, 512)
        # the first optimizer imports torch.optim's machinery: some 60 MB, once per process
        opt = torch.optim.SGD(lin.parameters(), lr=0.01, momentum=0.9)
        lin(torch.from_numpy(a)).sum().backward()
        opt.step()


def measure(side: str, name: str, n_threads: int) -> dict:
    """Run in this process (a fresh one): the peak of ``side`` ("dlcore" or "torch")."""
    from bench import networks, timing

    (network,) = networks.select([name])
    with timing.threads(n_threads, torch_too=side == "torch"):
        x, y = networks.data(network)
        source = networks.build_dlcore(network) if side == "torch" else None
        if source is not None:  # checked once here: the check runs dlcore, which is not torch's cost
            checked, reason = networks.torch_module(network, source, x)
            if checked is None:
                return {"peak_mb": None, "reason": reason}
            del checked
        _warm_runtime(side)
        gc.collect()
        _trim_heap()
        exact = _reset_high_water()
        baseline_kb = _status_kb("VmRSS") if exact else _status_kb("VmHWM")
        file_kb = _status_kb("RssFile")
        if side == "dlcore":
            net = networks.build_dlcore(network)
            step = networks.dlcore_step(network, net, x, y)
        else:
            from bench.twins import torch_twin
            from dlcore.layout import shape_to_internal

            module, _ = torch_twin(source, shape_to_internal(network.sample_shape))
            step = networks.torch_step(module, x, y)
        step()
        step()
        peak_kb = _status_kb("VmHWM") - (_status_kb("RssFile") - file_kb)
    return {"peak_mb": round(max(peak_kb - baseline_kb, 0) / 1024, 2), "exact": exact}


def _in_child(side: str, name: str, n_threads: int) -> dict:
    """``measure`` in a forked child of this process, so the imports are paid once per side."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, leave without running the parent's cleanup
        os.close(read)
        try:
            out = measure(side, name, n_threads)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
            out = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(answer or b'{"error": "the child died"}')


def measure_all(side: str, cases: list[tuple[str, int]]) -> dict[str, dict]:
    """{"<network>|<threads>": measure(...)} for every case, each in a child forked after the
    imports (which no case counts: the baseline is taken in the child)."""
    import numpy  # noqa: F401 - imported once, before any fork
    import threadpoolctl  # noqa: F401

    import dlcore.layers.sequential  # noqa: F401
    from dlcore.registry import default_registry

    default_registry().names("layers")  # the entry points read once, in the parent
    if side == "torch":
        import torch  # noqa: F401 - no torch op runs before a fork: its OpenMP pool starts in the child
    return {f"{name}|{n}": _in_child(side, name, n) for name, n in cases}


def peaks(side: str, cases: list[tuple[str, int]], timeout_s: float = 300) -> dict[str, float | None]:
    """{"<network>|<threads>": peak MB or None (no twin)} of ``side``, from one subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", side, *[f"{name}|{n}" for name, n in cases]],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench.memory {side}: {done.stderr[-2000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    errors = {key: m["error"] for key, m in measured.items() if "error" in m}
    if errors:
        raise RuntimeError(f"bench.memory {side}: {errors}")
    return {key: m["peak_mb"] for key, m in measured.items()}


if __name__ == "__main__":
    cases = [(arg.rsplit("|", 1)[0], int(arg.rsplit("|", 1)[1])) for arg in sys.argv[2:]]
    print(json.dumps(measure_all(sys.argv[1], cases)))
