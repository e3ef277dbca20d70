"""Shape inference over a whole spec: per-layer output shapes, parameters, FLOPs, memory."""

from __future__ import annotations

import math

import numpy as np

from dlcore.layout import shape_to_public
from dlcore.spec.validate import validate


def infer(spec, registry=None) -> dict:
    """The model table of a spec, computed without data.

    Inputs:
    - spec: a ``ValidatedSpec`` (used as it is) or a plain spec (validated here;
      ``SpecError`` when it is not valid).
    Returns: {"input_shape": public [C, H, W] or [D], "num_classes": C,
      "layers": [{"index", "type", "output_shape" (public list), "params",
      "flops"}; a residual block's row adds "shortcut" ("identity" | "projection") and
      "layers" (its branch's rows), an inception module's adds "branches" (a list of
      row lists)], "total_params", "total_flops" (forward, per sample; a
      multiply-add counts 2), "memory_bytes" (forward activations of one batch
      of ``training.batch_size`` in ``training.dtype``, input included)}.
    """
    checked = validate(spec, registry)
    training = checked["training"]
    itemsize = np.dtype(training["dtype"]).itemsize
    layers = [_public_row(row) for row in checked.rows]
    elements = math.prod(int(s) for s in checked.sample_shape) + sum(math.prod(row["output_shape"]) for row in layers)
    return {
        "input_shape": list(checked.sample_shape),
        "num_classes": checked.num_classes,
        "layers": layers,
        "total_params": sum(layer["params"] for layer in layers),
        "total_flops": sum(layer["flops"] for layer in layers),
        "memory_bytes": elements * training["batch_size"] * itemsize,
    }


def _public_row(row: dict) -> dict:
    """A row of ``Sequential.infer_rows`` in the public layout, nested blocks included."""
    out = {
        "index": int(row["index"]),
        "type": row["type"],
        "output_shape": list(shape_to_public(tuple(int(s) for s in row["out_shape"]))),
        "params": int(row["params"]),
        "flops": int(row["flops"]),
    }
    if "shortcut" in row:
        out["shortcut"] = row["shortcut"]
    if "layers" in row:
        out["layers"] = [_public_row(r) for r in row["layers"]]
    if "branches" in row:
        out["branches"] = [[_public_row(r) for r in branch] for branch in row["branches"]]
    return out
