"""The networks `make bench` times: the five reference networks of issue 12 and every
architecture in the registry, each as a dlcore training step and its PyTorch twin.

A training step is what the trainer does per mini-batch: the public-layout batch
converted to dlcore's internal layout, forward, softmax loss, backward, one momentum
update (lr 0.01, momentum 0.9); PyTorch's is ``zero_grad``, forward, ``cross_entropy``,
backward, ``SGD(momentum=0.9).step()``.  Both start from the same weights: the twin is
made from the built dlcore stack (bench/twins.py) and checked to compute the same
scores before anything is timed.

GFLOP per step (``gflop_per_step``): the multiply-adds of every layer with a weight
matrix (conv2d, depthwise conv2d, affine, a residual projection) counted as
2 x (weights) x (output positions) x batch for the forward pass; the backward pass
computes dW and dX, each as large as the forward, except dX of the first such layer,
which neither side computes (its input needs no gradient).  So
``gflop = (3 x forward - first layer's forward) / 1e9``.  Elementwise work (relu,
batchnorm, pooling, the update) is left out: it is memory-bound, and this is the figure
the sgemm peak is a ceiling for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

LR, MOMENTUM = 0.01, 0.9


def _mlp(batch: int) -> list[dict]:
    return [{"type": "affine", "units": 256}, {"type": "relu"}, {"type": "affine", "units": 256},
            {"type": "relu"}, {"type": "affine", "units": 10}]  # fmt: skip


def _cnn(batchnorm: bool, dropout: bool) -> list[dict]:
    bn = [{"type": "spatial_batchnorm"}] if batchnorm else []
    layers = [{"type": "conv2d", "filters": 32, "size": 3, "pad": 1}, *bn, {"type": "relu"},
              {"type": "maxpool", "size": 2},
              {"type": "conv2d", "filters": 64, "size": 3, "pad": 1}, *bn, {"type": "relu"},
              {"type": "maxpool", "size": 2}]  # fmt: skip
    if dropout:
        layers.append({"type": "dropout", "p": 0.5})
    return [*layers, {"type": "affine", "units": 10}]


def _resnet_tiny() -> list[dict]:
    conv = {"type": "conv2d", "filters": 16, "size": 3, "pad": 1}
    block = {"type": "residual", "shortcut": "identity", "activation": "relu",
             "layers": [conv, {"type": "spatial_batchnorm"}, {"type": "relu"}, conv, {"type": "spatial_batchnorm"}]}  # fmt: skip
    return [conv, {"type": "spatial_batchnorm"}, {"type": "relu"}, block, block,
            {"type": "global_avgpool"}, {"type": "affine", "units": 10}]  # fmt: skip


@dataclass(frozen=True)
class Network:
    """One benchmarked network: its spec layers, the public per-sample shape and the batch."""

    name: str  # the key under ``networks`` in bench/results.json
    title: str
    layers: list[dict] = field(hash=False)
    sample_shape: tuple[int, ...]  # public layout: (C, H, W) or (D,)
    batch: int
    classes: int = 10
    reference: bool = False  # one of the five: its twin must exist and agree


IMAGE = (3, 32, 32)

REFERENCE = (
    Network("mlp", "mlp 64-256-256-10, batch 128", _mlp(128), (64,), 128, reference=True),
    Network("mlp_b8", "mlp 64-256-256-10, batch 8", _mlp(8), (64,), 8, reference=True),
    Network("cnn", "conv3x3(32)-relu-pool, conv3x3(64)-relu-pool, affine 10; 3x32x32, batch 64",
            _cnn(False, False), IMAGE, 64, reference=True),
    Network("cnn_bn_drop", "cnn with spatial batchnorm after each conv and dropout 0.5 before the affine",
            _cnn(True, True), IMAGE, 64, reference=True),
    Network("resnet_tiny", "conv3x3(16)-bn-relu, 2 residual blocks, global avgpool, affine 10; batch 64",
            _resnet_tiny(), IMAGE, 64, reference=True),
)  # fmt: skip


def architectures(registry=None) -> list[Network]:
    """Every registered architecture at its default size, on 3x32x32 images, batch 64."""
    from dlcore.registry import default_registry

    registry = registry or default_registry()
    out = []
    for name in registry.names("architectures"):
        arch = registry.get("architectures", name)()
        out.append(Network(f"arch:{name}", f"{name} at its default size; 3x32x32, batch 64",
                           arch.layers(IMAGE, 10), IMAGE, 64))  # fmt: skip
    return out


def all_networks() -> list[Network]:
    return [*REFERENCE, *architectures()]


def select(names: list[str] | None) -> list[Network]:
    """The networks named (exact names, or ``arch`` for every architecture); all when None."""
    every = all_networks()
    if not names:
        return every
    chosen = [n for n in every if n.name in names or ("arch" in names and n.name.startswith("arch:"))]
    unknown = set(names) - {n.name for n in every} - {"arch"}
    if unknown:
        raise SystemExit(f"unknown network(s) {sorted(unknown)}; known: {[n.name for n in every]} or 'arch'")
    return chosen


# --------------------------------------------------------------------------- dlcore side


@dataclass
class DlcoreSetup:
    net: object
    x: np.ndarray  # public layout
    y: np.ndarray
    step: Callable[[], None]


def data(network: Network, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One mini-batch in the public layout, float32, and its labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((network.batch, *network.sample_shape)).astype(np.float32)
    return x, rng.integers(0, network.classes, network.batch)


def build_dlcore(network: Network, seed: int = 0):
    """The built dlcore stack (float32, He-style defaults of each layer, input grad skipped)."""
    from dlcore.heap import keep_freed_memory
    from dlcore.layers.sequential import Sequential
    from dlcore.layout import shape_to_internal

    keep_freed_memory()  # as the trainer does before its first step
    net = Sequential({"layers": network.layers})
    net.build(shape_to_internal(network.sample_shape), np.random.default_rng(seed), np.float32)
    net.need_input_grad = False
    return net


def dlcore_step(network: Network, net, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Callable[[], None]:
    """One training step of ``net`` on (x, y), as the trainer runs it."""
    from dlcore.layout import to_internal
    from dlcore.losses.softmax import SoftmaxLoss
    from dlcore.optimizers.momentum import Momentum

    loss, opt = SoftmaxLoss(), Momentum(lr=LR, momentum=MOMENTUM)
    params = dict(net.named_params())
    noise = np.random.default_rng(seed + 1)

    def step() -> None:
        scores = net.forward(to_internal(x), training=True, rng=noise)
        _, dscores = loss.forward(scores, y)
        net.backward(dscores)
        opt.step(params, dict(net.named_grads()), LR)

    return step


def setup_dlcore(network: Network, seed: int = 0) -> DlcoreSetup:
    x, y = data(network, seed)
    net = build_dlcore(network, seed)
    return DlcoreSetup(net, x, y, dlcore_step(network, net, x, y, seed))


# --------------------------------------------------------------------------- torch side

TWIN_TOLERANCE = 1e-4  # relative, float32 scores of a few layers


def torch_module(network: Network, net, x: np.ndarray):
    """(the twin of ``net``, None) or (None, why there is none); a reference network's twin
    must exist and agree with dlcore's scores, anything else raises."""
    from bench.twins import max_forward_difference, torch_twin
    from dlcore.layout import shape_to_internal

    module, reason = torch_twin(net, shape_to_internal(network.sample_shape))
    if module is None:
        if network.reference:
            raise RuntimeError(f"{network.name}: {reason}")
        return None, reason
    diff = max_forward_difference(net, module, x)
    if not diff <= TWIN_TOLERANCE:
        reason = f"the twin's scores differ from dlcore's by {diff:.2e} (relative)"
        if network.reference:
            raise RuntimeError(f"{network.name}: {reason}")
        return None, reason
    return module, None


def torch_step(module, x: np.ndarray, y: np.ndarray) -> Callable[[], None]:
    import torch

    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM)
    module.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(module(xt), yt).backward()
        opt.step()

    return step


# --------------------------------------------------------------------------- FLOPs


def _weight_layers(net) -> Iterator[tuple[object, tuple[int, ...]]]:
    """(leaf layer with a ``W``, its output shape) in forward order, projections included."""
    for leaf in net.layers_flat():
        if "W" in leaf.params:
            yield leaf, tuple(leaf.infer(leaf.in_shape).out_shape)


def gflop_per_step(net, batch: int) -> float:
    """(3 x forward - first layer's forward) multiply-add FLOPs of the weight layers, in GFLOP."""
    forward = [2 * leaf.params["W"].size * (math.prod(out[:-1]) if len(out) == 3 else 1) * batch
               for leaf, out in _weight_layers(net)]  # fmt: skip
    if not forward:
        return 0.0
    return (3 * sum(forward) - forward[0]) / 1e9
