"""bench/chart_points.py's run(): the figures make bench records, named by size and
database, from a real fill and real calls of the endpoint (small here: the million is
bench's)."""

from __future__ import annotations

import pytest

from bench import chart_points
from dljobs import testsupport
from tests.conftest import require_service


@pytest.mark.service
def test_run_answers_the_figures_of_each_database_with_spike_and_nan_kept():
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    figures = chart_points.run(points=5000, rounds=2)
    for database in ("sqlite", "postgres"):
        key = f"chart_5k_points_{database}"
        assert figures[f"{key}_ms"] >= figures[f"{key}_best_ms"] >= 0
        assert 4 <= figures[f"{key}_answered"] <= 2000
        assert figures[f"{key}_spike_and_nan_kept"] is True


def test_figure_names_say_the_size():
    assert [chart_points._count_name(n) for n in (1_000_000, 50_000, 2_500_000, 1234)] == ["1m", "50k", "2500k", "1234"]
