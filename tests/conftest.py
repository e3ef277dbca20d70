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
