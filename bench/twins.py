"""The PyTorch twin of a built dlcore stack: the same layers with the same initial weights.

dlcore keeps images NHWC inside a model and PyTorch NCHW, so the twin converts each
layer's arrays once when it is made:

- conv2d ``W`` (F, F, C, K) -> (K, C, F, F); a depthwise conv2d (F, F, C, M) -> (C*M, 1, F, F)
  with ``groups=C``; a residual projection (C, K) -> a 1x1 convolution (K, C, 1, 1) with the
  block's stride;
- affine ``W`` (D, K) -> (K, D); when its input is an image (H, W, C), dlcore flattens it in
  NHWC order and PyTorch in NCHW order, so the rows are permuted to match;
- batchnorm: gamma, beta, eps as they are; PyTorch's momentum is 1 - dlcore's.

``torch_twin(net)`` returns ``(module, None)``, or ``(None, reason)`` for a stack holding a
layer it has no twin for (a third party's layer): the benchmark then times dlcore alone.
:func:`max_forward_difference` is how the benchmark checks that a twin computes what the
dlcore stack computes before timing it.
"""

from __future__ import annotations

import functools

import numpy as np


class NoTwin(Exception):
    """A layer PyTorch has no twin for here; the message names it."""


def torch_twin(net, sample_shape_internal):
    """(torch module, None) computing what ``net`` computes, or (None, reason).

    Inputs:
    - net: a built dlcore Sequential
    - sample_shape_internal: its per-sample input shape, internal layout ((H, W, C) or (D,))
    """
    try:
        module, _ = _stack(net.children, tuple(sample_shape_internal))
    except NoTwin as exc:
        return None, str(exc)
    return module, None


def _tensor(arr):
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr)).clone()


def _stack(layers, shape):
    """(nn.Sequential, output shape) of a list of built dlcore layers; ``shape`` internal."""
    from torch import nn

    modules = []
    for layer in layers:
        module, shape = _layer(layer, shape)
        if module is not None:
            modules.append(module)
    return nn.Sequential(*modules), shape


def _layer(layer, shape):
    """(module or None for a no-op, output shape (internal)) of one built dlcore layer."""
    from torch import nn

    name = layer.name
    out_shape = tuple(layer.infer(shape).out_shape)
    cfg = layer.config
    simple = {
        "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    }  # fmt: skip
    if name in simple:
        return simple[name](), out_shape
    if name == "leaky_relu":
        return nn.LeakyReLU(cfg.alpha), out_shape
    if name == "elu":
        return nn.ELU(cfg.alpha), out_shape
    if name == "conv2d":
        f, k = cfg.size, cfg.filters
        conv = nn.Conv2d(shape[2], k, f, stride=cfg.stride, padding=layer.pad_amount,
                         padding_mode="zeros" if cfg.padding_mode == "zeros" else "replicate")
        _assign(conv, layer.params["W"].transpose(3, 2, 0, 1), layer.params["b"])
        return conv, out_shape
    if name == "depthwise_conv2d":
        w = layer.params["W"]  # (F, F, C, M): output channel c*M + m
        f, c, m = w.shape[0], w.shape[2], w.shape[3]
        conv = nn.Conv2d(c, c * m, f, stride=cfg.stride, padding=layer.pad_amount, groups=c)
        _assign(conv, w.transpose(2, 3, 0, 1).reshape(c * m, 1, f, f), layer.params["b"])
        return conv, out_shape
    if name == "affine":
        w = layer.params["W"]
        lin = nn.Linear(w.shape[0], w.shape[1])
        if len(shape) == 3:  # NHWC-flattened rows -> NCHW-flattened columns
            h, wd, c = shape
            wt = w.reshape(h, wd, c, -1).transpose(3, 2, 0, 1).reshape(w.shape[1], -1)
            _assign(lin, wt, layer.params["b"])
            return nn.Sequential(nn.Flatten(), lin), out_shape
        _assign(lin, w.T, layer.params["b"])
        return lin, out_shape
    if name == "flatten":
        if len(shape) == 3:
            # The next affine would see NHWC order: keep NHWC order here (one small copy).
            return _NHWCFlatten(), out_shape
        return None, out_shape
    if name in ("maxpool", "avgpool"):
        pool = nn.MaxPool2d if name == "maxpool" else nn.AvgPool2d
        return pool(cfg.size, stride=layer.stride), out_shape
    if name == "global_avgpool":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), out_shape
    if name in ("spatial_batchnorm", "batchnorm"):
        bn_cls = nn.BatchNorm2d if name == "spatial_batchnorm" else nn.BatchNorm1d
        bn = bn_cls(layer.params["gamma"].shape[0], eps=cfg.eps, momentum=1.0 - cfg.momentum)
        _assign(bn, layer.params["gamma"], layer.params["beta"])
        return bn, out_shape
    if name == "dropout":
        return nn.Dropout(cfg.p), out_shape
    if name == "residual":
        if layer.drop > 0:
            raise NoTwin("residual with stochastic_depth: no PyTorch twin here")
        body, body_shape = _stack(layer.body.children, shape)
        shortcut = None
        if layer.shortcut is not None:
            w, b = layer.shortcut.params["W"], layer.shortcut.params["b"]
            if len(shape) == 3:
                shortcut = nn.Conv2d(w.shape[0], w.shape[1], 1, stride=tuple(layer.shortcut.config.stride))
                _assign(shortcut, w.T[:, :, None, None], b)
            else:
                shortcut = nn.Linear(w.shape[0], w.shape[1])
                _assign(shortcut, w.T, b)
        return _Residual(body, shortcut, layer.config.activation == "relu"), body_shape
    if name == "inception":
        branches = []
        for branch in layer.branches:
            module, _ = _stack(branch.children, shape)
            branches.append(module)
        return _Inception(branches), out_shape
    raise NoTwin(f"{name}: no PyTorch twin here")


def _assign(module, weight, bias):
    import torch

    with torch.no_grad():
        module.weight.copy_(_tensor(weight))
        module.bias.copy_(_tensor(bias))


@functools.cache
def _modules():
    """The small nn.Module classes, defined on first use so importing this file needs no torch."""
    from torch import nn

    class NHWCFlatten(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    class Residual(nn.Module):
        def __init__(self, body, shortcut, relu):
            super().__init__()
            self.body, self.shortcut, self.relu = body, shortcut, relu

        def forward(self, x):
            z = self.body(x) + (x if self.shortcut is None else self.shortcut(x))
            return nn.functional.relu(z) if self.relu else z

    class Inception(nn.Module):
        def __init__(self, branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            import torch

            return torch.cat([branch(x) for branch in self.branches], dim=1)

    return NHWCFlatten, Residual, Inception


def _NHWCFlatten():
    return _modules()[0]()


def _Residual(body, shortcut, relu):
    return _modules()[1](body, shortcut, relu)


def _Inception(branches):
    return _modules()[2](branches)


def max_forward_difference(net, module, x_public: np.ndarray) -> float:
    """max |dlcore - torch| of the evaluation-mode scores on ``x_public`` (N, C, H, W) or (N, D),
    relative to max |dlcore|: a twin that copied its weights right gives float32 rounding only."""
    import torch

    from dlcore.layout import to_internal

    ours = net.forward(to_internal(x_public), training=False)
    module.eval()
    with torch.no_grad():
        theirs = module(torch.from_numpy(np.ascontiguousarray(x_public))).numpy()
    module.train()
    return float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(ours))), 1e-12))
