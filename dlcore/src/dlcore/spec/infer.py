"""Shape inference over a whole spec: per-layer output shapes, parameters, FLOPs, memory."""

from __future__ import annotations

import math

import numpy as np

from dlcore.component import ASSUMED_SLOTS_PER_PARAM
from dlcore.layout import shape_to_public
from dlcore.registry import default_registry
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
      of ``training.batch_size`` in ``training.dtype``, input included),
      "activation_bytes_per_sample" (those activations for one sample),
      "eval_memory_bytes" (the same for one evaluation pass of ``training.eval_batch_size``),
      "optimizer_slots" (arrays the optimizer keeps per parameter, its ``slots_per_param``),
      "checkpoint_bytes" (parameters x (1 + optimizer_slots) x dtype bytes: the arrays a
      checkpoint stores, without its small metadata and the data order)}.
    """
    checked = validate(spec, registry)
    training = checked["training"]
    itemsize = np.dtype(training["dtype"]).itemsize
    layers = [_public_row(row) for row in checked.rows]
    elements = math.prod(int(s) for s in checked.sample_shape) + sum(math.prod(row["output_shape"]) for row in layers)
    total_params = sum(layer["params"] for layer in layers)
    slots = optimizer_slots(checked, registry)
    per_sample = elements * itemsize
    return {
        "input_shape": list(checked.sample_shape),
        "num_classes": checked.num_classes,
        "layers": layers,
        "total_params": total_params,
        "total_flops": sum(layer["flops"] for layer in layers),
        "memory_bytes": per_sample * training["batch_size"],
        "activation_bytes_per_sample": per_sample,
        "eval_memory_bytes": per_sample * training["eval_batch_size"],
        "optimizer_slots": slots,
        "checkpoint_bytes": total_params * (1 + slots) * itemsize,
    }


def optimizer_slots(checked, registry=None) -> int:
    """Arrays per parameter the spec's optimizer keeps (its ``slots_per_param``, or the assumed most)."""
    cls = (registry or default_registry()).get("optimizers", checked["optimizer"]["type"])
    slots = getattr(cls, "slots_per_param", None)
    return ASSUMED_SLOTS_PER_PARAM if slots is None else int(slots)


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
