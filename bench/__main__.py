"""`make bench`: dlcore against PyTorch on the CPU, measured in the same run.

Targets are ratios (dlcore time / torch time), never absolute times:
faster than torch on MLPs, within about 1.35x on small CNNs.  Both sides use
the same thread count (DLJOBS_BLAS_THREADS, default 1 here for repeatability).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _best_of(fn, repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _dlcore_step(layers, in_shape_internal, batch, num_classes, seed=0):
    from dlcore.layers.sequential import Sequential
    from dlcore.losses.softmax import SoftmaxLoss
    from dlcore.optimizers.momentum import Momentum

    rng = np.random.default_rng(seed)
    net = Sequential({"layers": layers})
    net.build(in_shape_internal, rng, np.float32)
    net.need_input_grad = False
    loss = SoftmaxLoss()
    opt = Momentum(lr=0.01, momentum=0.9)
    x = rng.standard_normal((batch, *in_shape_internal)).astype(np.float32)
    y = rng.integers(0, num_classes, batch)
    params = dict(net.named_params())

    def step():
        scores = net.forward(x, training=True, rng=rng)
        _, dscores = loss.forward(scores, y)
        net.backward(dscores)
        opt.step(params, dict(net.named_grads()), 0.01)

    return step


def _torch_step(model, in_shape_public, batch, num_classes, seed=0):
    import torch

    torch.manual_seed(seed)
    x = torch.randn(batch, *in_shape_public)
    y = torch.randint(0, num_classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        opt.step()

    return step


def cases():
    from torch import nn

    yield (
        "mlp 64-256-256-10, batch 128",
        [{"type": "affine", "units": 256}, {"type": "relu"}, {"type": "affine", "units": 256},
         {"type": "relu"}, {"type": "affine", "units": 10}],
        (64,), (64,), 128, 10,
        nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)),
        1.0,
    )
    yield (
        "small cnn 3x32x32 conv16-conv32, batch 64",
        [{"type": "conv2d", "filters": 16, "size": 3, "pad": 1}, {"type": "relu"},
         {"type": "maxpool", "size": 2},
         {"type": "conv2d", "filters": 32, "size": 3, "pad": 1}, {"type": "relu"},
         {"type": "maxpool", "size": 2},
         {"type": "flatten"}, {"type": "affine", "units": 10}],
        (32, 32, 3), (3, 32, 32), 64, 10,
        nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(32 * 8 * 8, 10)),
        1.35,
    )
    yield (
        "overhead-bound mlp 64-256-256-10, batch 8",
        [{"type": "affine", "units": 256}, {"type": "relu"}, {"type": "affine", "units": 256},
         {"type": "relu"}, {"type": "affine", "units": 10}],
        (64,), (64,), 8, 10,
        nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)),
        1.0,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("DLJOBS_BLAS_THREADS", "1")))
    parser.add_argument("--json", action="store_true", help="print one JSON object per case")
    parser.add_argument("--no-service", action="store_true", help="skip the service figures (bench/service.py)")
    args = parser.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    rows = []
    with threadpool_limits(limits=args.threads):
        for title, layers, ours_shape, torch_shape, batch, classes, torch_model, target in cases():
            ours = _best_of(_dlcore_step(layers, ours_shape, batch, classes), args.repeat)
            theirs = _best_of(_torch_step(torch_model, torch_shape, batch, classes), args.repeat)
            ratio = ours / theirs
            rows.append({"case": title, "dlcore_ms": ours * 1e3, "torch_ms": theirs * 1e3,
                         "ratio": ratio, "target": target, "met": ratio <= target})
    for r in rows:
        if args.json:
            print(json.dumps(r))
        else:
            mark = "ok " if r["met"] else "MISS"
            print(f"{mark} {r['case']:<45} dlcore {r['dlcore_ms']:8.2f} ms   torch {r['torch_ms']:8.2f} ms"
                  f"   ratio {r['ratio']:.2f} (target <= {r['target']})")
    if not args.no_service:
        from bench import service  # deferred: it starts workers, which --no-service never needs

        figures = service.run()
        # deferred: like bench.service, it starts the API, which --no-service never needs
        from bench import submit_load

        figures["submit_load"] = submit_load.run()
        print(json.dumps(figures) if args.json else service.table(figures) + "\n" + submit_load.table(figures["submit_load"]))
        # deferred: 100,000 jobs in a fresh PostgreSQL database, which --no-service never needs
        from bench import joblist

        figures["joblist"] = joblist.run()
        print(json.dumps(figures["joblist"]) if args.json else joblist.table(figures["joblist"]))
        # deferred: a hundred event streams on an API process, which --no-service never needs
        from bench import streams

        figures["streams"] = streams.run()
        print(json.dumps(figures["streams"]) if args.json else streams.table(figures["streams"]))
        service.write_results(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
