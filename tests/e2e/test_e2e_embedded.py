"""The embedded default (``dljobs up --workers 2``: SQLite, filesystem broker) end to end."""

from __future__ import annotations

import pytest

from tests.e2e.e2e_flows import (
    cancel_flow,
    duplicate_delivery_flow,
    eight_jobs_flow,
    sse_flow,
)

pytestmark = pytest.mark.service


def test_embedded_eight_jobs_over_http(embedded_service, make_spec):
    eight_jobs_flow(embedded_service, make_spec)


def test_embedded_cancel_running_and_queued(embedded_service, make_spec):
    cancel_flow(embedded_service, make_spec)


def test_embedded_duplicate_delivery_trains_once(embedded_service, make_spec):
    duplicate_delivery_flow(embedded_service, make_spec)


def test_embedded_four_event_streams_follow_real_jobs(embedded_service, make_spec):
    sse_flow(embedded_service, make_spec)
