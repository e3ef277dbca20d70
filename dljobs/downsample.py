"""Which points of a long series a chart needs: each bucket's minimum and maximum.

A loss curve of a million iterations has far more points than a chart has pixels; every
n-th point would hide a spike between two kept points, and a mean would flatten it.
Splitting the series into equal buckets and keeping, in each, the point where every
series is lowest and the point where it is highest (plus the first and last points)
draws the same envelope a chart of all the points draws, with a few thousand.

A missing value (NaN: a loss that became NaN or infinite is stored as null) counts as
the highest point of its bucket, so the moment a run broke is never downsampled away.
Pure NumPy, no Python loop over points: ``dljobs.queries`` feeds it the columns it read
for epoch points (a few series, a few hundred points).  Iteration points, which run to a
million, are bucketed the same way (min and max per bucket, NaN as the maximum) by the
database itself, over the typed ``metric_points.loss`` column (``queries.BUCKET_EXTREMES``),
so they never cross to Python.
"""

from __future__ import annotations

import numpy as np

#: The fewest points a caller may ask for: the first, the last, one bucket's min and max.
MIN_POINTS = 4


def min_max_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """The indices of the points to keep so every bucket's lowest and highest values stay.

    Inputs:
    - values: (N,) or (N, S) floats, S series sampled at the same N points, in order;
      NaN where a value is missing.
    - max_points: at most this many indices are returned (at least ``MIN_POINTS``).
    Returns: (K,) int64 indices into the N points, sorted and unique, K <= max_points;
    all N indices when N <= max_points.  With B = (max_points - 2) // (2 S) buckets of
    (nearly) equal length, each bucket contributes the index of its minimum and of its
    maximum for every series (NaN counts as the maximum), and 0 and N - 1 are kept.
    """
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, got {max_points}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"values must be (N,) or (N, S), got shape {values.shape}")
    n, series = values.shape
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = max(1, (max_points - 2) // (2 * max(1, series)))
    starts = np.linspace(0, n, buckets + 1).astype(np.int64)[:-1]
    sizes = np.diff(np.append(starts, n))
    missing = np.isnan(values)
    lowest = np.where(missing, np.inf, values)  # NaN is never the minimum...
    highest = np.where(missing, -np.inf, -values)  # ...and always the maximum (of -values: the min)
    kept = [np.array([0, n - 1], dtype=np.int64)]
    for column in range(series):
        for ranked in (lowest[:, column], highest[:, column]):
            kept.append(_first_minimum_per_bucket(ranked, starts, sizes))
    return np.unique(np.concatenate(kept))


def _first_minimum_per_bucket(values: np.ndarray, starts: np.ndarray,
                              sizes: np.ndarray) -> np.ndarray:
    """(B,) the index of the first smallest value of each bucket.

    Inputs:
    - values: (N,) floats, no NaN (+inf or -inf stand for a missing value).
    - starts: (B,) the index where each bucket begins, increasing, starts[0] = 0.
    - sizes: (B,) the length of each bucket (at least 1), summing to N.
    """
    minima = np.minimum.reduceat(values, starts)
    at_minimum = np.flatnonzero(values == np.repeat(minima, sizes))
    # Every bucket holds its minimum, and at_minimum is sorted: the first hit at or after
    # a bucket's start is that bucket's first minimum.
    return at_minimum[np.searchsorted(at_minimum, starts)]
