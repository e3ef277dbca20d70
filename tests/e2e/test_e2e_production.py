"""PostgreSQL + Redis + gunicorn + two ``dljobs worker`` processes, end to end."""

from __future__ import annotations

import pytest

from tests.e2e.e2e_flows import (
    cancel_flow,
    duplicate_delivery_flow,
    eight_jobs_flow,
    sse_flow,
)

pytestmark = pytest.mark.service


def test_production_eight_jobs_over_http(production_service, make_spec):
    eight_jobs_flow(production_service, make_spec)


def test_production_cancel_running_and_queued(production_service, make_spec):
    cancel_flow(production_service, make_spec)


def test_production_duplicate_delivery_trains_once(production_service, make_spec):
    duplicate_delivery_flow(production_service, make_spec)


def test_production_four_event_streams_follow_real_jobs(production_service, make_spec):
    sse_flow(production_service, make_spec)
