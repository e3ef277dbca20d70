"""bench/profile_layers.py: one row per top-level layer with its forward and backward, per thread count.

Nothing is judged by speed here; the test checks the profile covers the network's layers
and the loss + update, at every thread count asked for, as docs/performance.md shows it.
"""

from __future__ import annotations

import time

import pytest

from bench import networks, profile_layers


@pytest.mark.slow
def test_a_profile_has_a_row_per_layer_at_each_thread_count_and_a_table():
    (cnn,) = networks.select(["cnn"])
    by_threads = {t: profile_layers.profile(cnn, t, rounds=2, clock=time.perf_counter) for t in (1, 2)}
    names = [networks.build_dlcore(cnn)[i].name for i in range(len(cnn.layers))]
    for rows in by_threads.values():
        assert [name for name, _, _ in rows] == [*names, "loss + update"]
        assert all(fwd > 0 for _, fwd, _ in rows)
        assert all(bwd > 0 for _, _, bwd in rows[1:-1])  # the first layer's dW, then every dx
    text = profile_layers.table("cnn", by_threads)
    assert "| layer | fwd 1t | bwd 1t | fwd 2t | bwd 2t |" in text
    assert text.count("\n| ") == len(names) + 4  # header, separator, the layers, loss + update, sum
