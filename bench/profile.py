"""Where a dlcore training step spends its time: forward and backward per layer.

``python -m bench.profile`` times the training step of each reference network
(bench/networks.py) at 1 thread and at all cores, layer by layer, and prints one
markdown table per network (docs/performance.md holds the latest):

- every layer's ``forward`` and ``backward`` is wrapped with a timer on the instance, so
  the step runs exactly as the benchmark runs it;
- a block (residual, inception) is a row of its own with its *own* time: the block's
  call minus its layers' (the residual's sum and relu, the inception's concatenation);
- ``loss`` (softmax forward and its gradient) and ``update`` (the momentum step) are rows
  too, and ``step`` is the whole step, so the rows add up to it (less the timers' cost);
- figures are milliseconds per step, the mean over ``--steps`` steps after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import numpy as np

from bench import networks, timing


def _nodes(layer, prefix=""):
    """(dotted name, layer) of every layer under ``layer``, depth-first, containers included."""
    for name, child in layer.named_children():
        path = f"{prefix}{name}"
        yield path, child
        if getattr(child, "container", False):
            yield from _nodes(child, path + ".")


class Timers:
    """Inclusive seconds of each wrapped call, by (layer path, "forward" | "backward")."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)

    def wrap(self, path: str, layer) -> None:
        for what in ("forward", "backward"):
            inner = getattr(layer, what)

            def timed(*args, _inner=inner, _key=(path, what), **kwargs):
                started = time.perf_counter()
                try:
                    return _inner(*args, **kwargs)
                finally:
                    self.seconds[_key] += time.perf_counter() - started

            setattr(layer, what, timed)


def profile(network: networks.Network, n_threads: int, steps: int) -> list[dict]:
    """Rows {"layer", "type", "forward_ms", "backward_ms"} of one network at ``n_threads``."""
    from dlcore.layout import to_internal
    from dlcore.losses.softmax import SoftmaxLoss
    from dlcore.optimizers.momentum import Momentum

    setup = networks.setup_dlcore(network)
    net, x, y = setup.net, setup.x, setup.y
    nodes = list(_nodes(net))
    timers = Timers()
    for path, layer in nodes:
        timers.wrap(path, layer)
    loss, opt = SoftmaxLoss(), Momentum(lr=networks.LR, momentum=networks.MOMENTUM)
    params = dict(net.named_params())
    extra: dict[str, float] = defaultdict(float)

    def step() -> None:
        t0 = time.perf_counter()
        scores = net.forward(to_internal(x), training=True, rng=noise)
        t1 = time.perf_counter()
        _, dscores = loss.forward(scores, y)
        t2 = time.perf_counter()
        net.backward(dscores)
        t3 = time.perf_counter()
        opt.step(params, dict(net.named_grads()), networks.LR)
        t4 = time.perf_counter()
        extra["loss"] += t2 - t1
        extra["update"] += t4 - t3
        extra["step"] += t4 - t0

    noise = np.random.default_rng(1)
    with timing.threads(n_threads, torch_too=False):
        for _ in range(3):
            step()
        timers.seconds.clear()
        extra.clear()
        for _ in range(steps):
            step()
    children = defaultdict(lambda: defaultdict(float))  # a block's path -> its layers' inclusive time
    paths = {path for path, _ in nodes}
    for path, _ in nodes:
        parent = path.rsplit(".", 1)[0] if "." in path else None
        while parent is not None and parent not in paths:
            parent = parent.rsplit(".", 1)[0] if "." in parent else None
        if parent is not None:
            for what in ("forward", "backward"):
                children[parent][what] += timers.seconds[(path, what)]
    rows = []
    for path, layer in nodes:
        own = {what: timers.seconds[(path, what)] - children[path][what] for what in ("forward", "backward")}
        kind = layer.name + (" (own)" if getattr(layer, "container", False) else "")
        rows.append({"layer": path, "type": kind, "forward_ms": 1e3 * own["forward"] / steps,
                     "backward_ms": 1e3 * own["backward"] / steps})  # fmt: skip
    for what in ("loss", "update"):
        rows.append({"layer": what, "type": what, "forward_ms": 1e3 * extra[what] / steps, "backward_ms": None})
    rows.append({"layer": "step", "type": "whole step", "forward_ms": 1e3 * extra["step"] / steps, "backward_ms": None})
    return rows


def markdown(network: networks.Network, by_threads: dict[int, list[dict]]) -> str:
    counts = sorted(by_threads)
    head = " | ".join(f"fwd ms {n}t | bwd ms {n}t" for n in counts)
    lines = [f"#### {network.name}: {network.title}", "", f"| layer | type | {head} |",
             "| --- | --- | " + " | ".join("---: | ---:" for _ in counts) + " |"]  # fmt: skip
    first = by_threads[counts[0]]
    for i, row in enumerate(first):
        cells = []
        for n in counts:
            r = by_threads[n][i]
            cells.append(f"{r['forward_ms']:.3f}")
            cells.append("" if r["backward_ms"] is None else f"{r['backward_ms']:.3f}")
        lines.append(f"| {row['layer']} | {row['type']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--network", action="append", help="profile only this network (repeatable)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, action="append", help="thread counts (default: 1 and all cores)")
    args = parser.parse_args(argv)
    counts = sorted(set(args.threads)) if args.threads else sorted({1, timing.cores()})
    chosen = networks.select(args.network) if args.network else list(networks.REFERENCE)
    for network in chosen:
        print(markdown(network, {n: profile(network, n, args.steps) for n in counts}) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
