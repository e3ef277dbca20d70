"""dljobs.downsample: the min and max of every bucket stay, so a chart of a few thousand
points draws the envelope a chart of a million points draws."""

from __future__ import annotations

import numpy as np
import pytest

from dljobs.downsample import MIN_POINTS, min_max_indices


def _envelope(values: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket of ``np.array_split``, the min and max, written the slow, obvious way."""
    parts = np.array_split(values, buckets)
    return np.array([p.min() for p in parts]), np.array([p.max() for p in parts])


def test_a_short_series_is_kept_whole():
    assert min_max_indices(np.arange(10.0), 10).tolist() == list(range(10))
    assert min_max_indices(np.arange(3.0), MIN_POINTS).tolist() == [0, 1, 2]
    assert min_max_indices(np.zeros(0), 100).tolist() == []


def test_a_single_spike_in_a_million_points_is_kept():
    rng = np.random.default_rng(0)
    loss = np.exp(-np.linspace(0, 5, 1_000_000)) + rng.normal(0, 0.01, 1_000_000)
    loss[654_321] = 40.0
    loss[17] = -3.0
    kept = min_max_indices(loss, 2000)
    assert len(kept) <= 2000
    assert {654_321, 17, 0, 999_999} <= set(kept.tolist())
    assert np.all(np.diff(kept) > 0)  # sorted and unique: a line can be drawn through them


def test_every_buckets_min_and_max_survive():
    rng = np.random.default_rng(1)
    values = rng.normal(size=10_007)  # not a multiple of the bucket count
    max_points = 202
    kept = min_max_indices(values, max_points)
    buckets = (max_points - 2) // 2
    # the kept points' envelope per bucket is the full series' envelope
    starts = np.linspace(0, len(values), buckets + 1).astype(int)
    for b in range(buckets):
        inside = kept[(kept >= starts[b]) & (kept < starts[b + 1])]
        part = values[starts[b]:starts[b + 1]]
        assert values[inside].min() == part.min() and values[inside].max() == part.max()
    low, high = _envelope(values, 1)
    assert values[kept].min() == low[0] and values[kept].max() == high[0]


def test_a_nan_is_kept_as_the_moment_a_run_broke():
    values = np.linspace(1.0, 0.1, 100_000)
    values[50_000] = np.nan
    kept = min_max_indices(values, 100)
    assert 50_000 in kept.tolist()
    assert len(kept) <= 100


def test_several_series_each_keep_their_extremes_within_the_budget():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(50_000, 2))
    values[123, 0] = 99.0
    values[45_678, 1] = -99.0
    kept = min_max_indices(values, 400)
    assert len(kept) <= 400
    assert {123, 45_678} <= set(kept.tolist())


def test_an_all_missing_series_keeps_points_without_failing():
    kept = min_max_indices(np.full(1000, np.nan), 10)
    assert 0 < len(kept) <= 10


@pytest.mark.parametrize("bad", [0, 1, MIN_POINTS - 1])
def test_too_few_points_is_an_error(bad):
    with pytest.raises(ValueError, match="at least"):
        min_max_indices(np.arange(100.0), bad)
