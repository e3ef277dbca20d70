"""Seeded, stratified train/validation splits."""

from __future__ import annotations

import numpy as np


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so every class keeps its share in both parts.

    Each class c of n_c samples gives about ``val_fraction * n_c`` of them to
    validation (quotas rounded by largest remainder, so the total is
    ``round(val_fraction * N)``); a class with at least 2 samples always has at
    least one in each part when 0 < val_fraction < 1.

    Inputs:
    - y: (N,) integer labels
    - val_fraction: in [0, 1)
    - seed: the split's seed (same seed, same split)

    Returns:
    - train_idx: (N - V,) int64, ascending
    - val_idx: (V,) int64, ascending
    """
    y = np.asarray(y)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = val_fraction * counts
    n_val = np.floor(quota).astype(np.int64)
    leftover = round(val_fraction * len(y)) - int(n_val.sum())
    if leftover > 0:
        n_val[np.argsort(-(quota - n_val), kind="stable")[:leftover]] += 1
    if val_fraction > 0:
        n_val = np.where(counts >= 2, np.clip(n_val, 1, counts - 1), n_val)
    val_parts = []
    for c, k in zip(classes, n_val):
        members = np.flatnonzero(y == c)
        val_parts.append(rng.permutation(members)[:k])
    val_idx = (
        np.sort(np.concatenate(val_parts)).astype(np.int64) if val_parts else np.zeros(0, np.int64)
    )
    is_val = np.zeros(len(y), dtype=bool)
    is_val[val_idx] = True
    return np.flatnonzero(~is_val).astype(np.int64), val_idx
