"""Shared fixtures and the rule for tests that need real services.

Tests that need PostgreSQL, Redis, Chromium or worker processes skip with a
clear reason on a laptop without them, and fail under ``CI=true``: zero skips in CI.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(available: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a real service a test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter) -> None:
    """The example counts of the fuzz and property tests, in every run's log (xdist too)."""
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, value in getattr(report, "user_properties", ())
        if key == "example_counts"
    ]
    if lines:
        terminalreporter.write_sep("-", "fuzzing and property tests: examples run")
        for line in lines:
            terminalreporter.write_line(line)
