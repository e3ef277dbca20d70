"""bench/profile.py: a row per layer with its own forward and backward, per thread count.

Nothing is judged by speed here; the test checks the profile covers every layer of the
network, the loss and the update, adds up to the whole step, and renders the table
docs/performance.md shows.
"""

from __future__ import annotations

import pytest

from bench import networks, profile


@pytest.mark.slow
def test_a_profile_has_a_row_per_layer_at_each_thread_count_and_adds_up_to_the_step():
    (cnn,) = networks.select(["cnn"])
    by_threads = {n: profile.profile(cnn, n, steps=2) for n in (1, 2)}
    for rows in by_threads.values():
        names = [row["layer"] for row in rows]
        assert names[-3:] == ["loss", "update", "step"] and len(names) > 3
        layers = rows[:-3]
        assert all(row["forward_ms"] > 0 for row in layers)
        assert all(row["backward_ms"] >= 0 for row in layers)
        parts = sum(row["forward_ms"] + row["backward_ms"] for row in layers) + rows[-3]["forward_ms"] \
            + rows[-2]["forward_ms"]
        assert parts <= rows[-1]["forward_ms"] * 1.05  # the rows are parts of the step (timers aside)
    text = profile.markdown(cnn, by_threads)
    assert "| layer | type | fwd ms 1t | bwd ms 1t | fwd ms 2t | bwd ms 2t |" in text
    assert text.count("\n| ") == len(by_threads[1]) + 2  # header, separator, then one line per row
