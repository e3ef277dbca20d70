"""Preprocessors: statistics fitted on the training split, saved with the model.

They work on public-layout arrays, (N, D) or (N, C, H, W), keep only arrays
in ``state`` (so the model saves them to ``.npz``), never modify their input,
and return floating arrays: the input's dtype when it is floating, float32
otherwise.  Statistics are accumulated in float64 and kept in float64.
"""

from __future__ import annotations

import numpy as np

from dlcore.backend import DEFAULT_DTYPE


def output_dtype(x: np.ndarray) -> np.dtype:
    """The dtype a transform returns for input ``x``: its own if floating, else float32."""
    return x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(DEFAULT_DTYPE)


def require_samples(name: str, x: np.ndarray, ndims: tuple[int, ...] = (2, 4)) -> None:
    """Raise ValueError unless ``x`` is a non-empty batch of one of the accepted ranks."""
    if x.ndim not in ndims:
        layouts = " or ".join({2: "(N, D)", 4: "(N, C, H, W)"}[n] for n in ndims)
        raise ValueError(f"{name}: expected {layouts} arrays, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: cannot fit on zero samples")


def require_fitted(name: str, state: dict, key: str) -> np.ndarray:
    """The fitted statistic ``key``, or a RuntimeError saying ``fit`` must come first."""
    if key not in state:
        raise RuntimeError(f"{name}: transform before fit; fit on the training split first")
    return state[key]
