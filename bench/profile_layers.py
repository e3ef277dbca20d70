"""Where a dlcore training step spends its time: each layer's forward and backward, at 1 and N threads.

    python -m bench.profile_layers cnn resnet_tiny --threads 1 2 --rounds 30

For each network of bench/networks.py named on the command line, one training step is
run layer by layer (the top-level layers of the stack; a residual block is one row),
timing every forward and every backward call, plus the loss and the momentum update,
at each thread count (threadpoolctl sets the BLAS, which also sizes dlcore's own pool,
dlcore.parallel).  Printed as a markdown table of medians in ms; ``--clock cpu`` gives
the calling thread's CPU time instead of wall time, which a loaded machine disturbs less
at 1 thread (at more threads it leaves out the work of the other threads).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench import networks

WARMUP = 3  # steps that fill the workspace and the caches before any is timed


def profile(network: networks.Network, threads: int, rounds: int, clock) -> list[tuple[str, float, float]]:
    """(layer name, forward ms, backward ms) medians over ``rounds`` steps, then ("loss + update", ms, 0)."""
    from threadpoolctl import threadpool_limits

    from dlcore.layout import to_internal
    from dlcore.losses.softmax import SoftmaxLoss
    from dlcore.optimizers.momentum import Momentum

    net = networks.build_dlcore(network)
    x, y = networks.data(network)
    layers = [net[i] for i in range(len(net))]
    layers[0].need_input_grad = False  # as Sequential.backward passes it: the input needs no gradient
    loss, opt = SoftmaxLoss(), Momentum(lr=networks.LR, momentum=networks.MOMENTUM)
    params = dict(net.named_params())
    rng = np.random.default_rng(1)
    times = np.zeros((rounds + WARMUP, len(layers) + 1, 2))
    with threadpool_limits(limits=threads):
        for r in range(rounds + WARMUP):
            out = to_internal(x)
            for i, layer in enumerate(layers):
                t0 = clock()
                out = layer.forward(out, training=True, rng=rng)
                times[r, i, 0] = clock() - t0
            t0 = clock()
            _, grad = loss.forward(out, y)
            tail = clock() - t0
            for i in reversed(range(len(layers))):
                t0 = clock()
                grad = layers[i].backward(grad)
                times[r, i, 1] = clock() - t0
            t0 = clock()
            opt.step(params, dict(net.named_grads()), networks.LR)
            times[r, -1, 0] = tail + clock() - t0
    med = np.median(times[WARMUP:], axis=0) * 1e3
    names = [layer.name for layer in layers] + ["loss + update"]
    return [(name, float(f), float(b)) for name, (f, b) in zip(names, med, strict=True)]


def table(name: str, by_threads: dict[int, list[tuple[str, float, float]]]) -> str:
    counts = sorted(by_threads)
    head = " | ".join(f"fwd {t}t | bwd {t}t" for t in counts)
    lines = [f"{name}: median ms per call", "", f"| layer | {head} |", "| --- |" + " --- | --- |" * len(counts)]
    rows = by_threads[counts[0]]
    for i, (layer, _, _) in enumerate(rows):
        cells = " | ".join(f"{by_threads[t][i][1]:.2f} | {by_threads[t][i][2]:.2f}" for t in counts)
        lines.append(f"| {i}: {layer} | {cells} |")
    totals = " | ".join(
        f"{sum(f for _, f, _ in by_threads[t]):.2f} | {sum(b for _, _, b in by_threads[t]):.2f}" for t in counts
    )
    lines.append(f"| sum | {totals} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_layers", description=__doc__.splitlines()[0])
    parser.add_argument("networks", nargs="*", default=["cnn"], help="names from bench/networks.py (default cnn)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    for network in networks.select(args.networks):
        by_threads = {t: profile(network, t, args.rounds, clock) for t in args.threads}
        print(table(network.name, by_threads) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
