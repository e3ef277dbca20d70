"""A sweep on the embedded default, ``dljobs up --workers 2`` exactly as a person starts it:
SQLite (the sweep's lock a file lock), the filesystem transport, the workers' own sweep ticks."""

from __future__ import annotations

import pytest

from dljobs.lifecycle import JobStatus, SweepStatus
from tests.e2e.conftest import small_spec

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_an_asha_sweep_runs_to_its_end_on_dljobs_up(embedded_service):
    api = embedded_service.client()
    body = {"name": "up-asha", "base": small_spec("up-asha", epochs=1),
            "space": {"optimizer.lr": {"loguniform": [1e-4, 0.2]}, "model.layers[1].units": {"int": [8, 32]}},
            "method": {"type": "asha", "trials": 5, "min_epochs": 1, "max_epochs": 3, "reduction": 3, "seed": 4},
            "metric": "val_loss", "max_concurrent": 2}
    done = api.wait_sweep(api.submit_sweep(body)["id"], timeout=240)
    assert done["status"] == SweepStatus.SUCCEEDED, (done, embedded_service.procs.logs())
    statuses = [r["status"] for r in done["leaderboard"]]
    assert len(statuses) == 5 and set(statuses) <= {JobStatus.SUCCEEDED, JobStatus.STOPPED_EARLY}
    assert JobStatus.SUCCEEDED in statuses
    losses = [r["val_loss"] for r in done["leaderboard"]]
    assert losses == sorted(losses)
