"""The embedded default (``dljobs up``: SQLite, the front door, gunicorn) serves a hundred event
streams too, each complete and in order: it runs the API with the same capacity as ``dljobs api``.

The scenario is ``bench.streams.many_streams``, as in ``test_e2e_streams_many.py``; here on
the database and transport a laptop gets with no configuration.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from bench.streams import many_streams
from dljobs.db.session import make_engine
from dljobs.embedded import EmbeddedService

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_dljobs_up_serves_a_hundred_streams_each_complete_and_in_order(tmp_path):
    data = tmp_path / "data"
    # one token opens all hundred streams: its own limit (16 by default) raised
    with EmbeddedService(data, workers=1, env={"DLJOBS_MAX_STREAMS_PER_TOKEN": "200"}) as service:
        engine = make_engine(f"sqlite:///{data / 'dljobs.sqlite'}")
        try:
            figures = many_streams(service.base_url, service.token, sessionmaker(bind=engine), jobs=10,
                                   viewers=10, reports=30)
        finally:
            engine.dispose()
    assert figures["errors"] == [], f"{figures['errors'][:3]}\n{(data / 'up.log').read_text()[-3000:]}"
    assert figures["streams"] == 100 and figures["incomplete"] == 0
    for job_id, viewers in figures["events"].items():
        for events in viewers:
            assert [(e["id"], e["event"]) for e in events] == figures["logged"][job_id]
            assert events[-1]["data"]["status"] == "succeeded"
    print(f"\ndljobs up, 100 open streams: GET /healthz p99 {figures['healthz_p99_ms']} ms, "
          f"GET /api/v1/jobs p99 {figures['joblist_p99_ms']} ms ({figures['joblist_requests']} requests each)")
