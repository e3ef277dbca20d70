"""Conversions between the public NCHW layout and the internal NHWC layout."""

from __future__ import annotations

import numpy as np

from dlcore.component import Shape


def to_internal(x: np.ndarray) -> np.ndarray:
    """x: (N, C, H, W) -> (N, H, W, C) contiguous; (N, D) is returned unchanged."""
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def to_public(x: np.ndarray) -> np.ndarray:
    """x: (N, H, W, C) -> (N, C, H, W); (N, D) is returned unchanged."""
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def shape_to_internal(shape: Shape) -> Shape:
    """(C, H, W) -> (H, W, C); (D,) unchanged."""
    shape = tuple(int(s) for s in shape)
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def shape_to_public(shape: Shape) -> Shape:
    """(H, W, C) -> (C, H, W); (D,) unchanged."""
    shape = tuple(int(s) for s in shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
