"""The tpe plugin on the real service: installed beside dljobs, listed by the API, and a
6-trial sweep on digits run to completion by two real Celery workers (the sweeps tests'
``sweep_service``: PostgreSQL, Redis, ``dljobs api`` and two ``dljobs worker`` processes)."""

from __future__ import annotations

import re
import time
from importlib.metadata import distribution, entry_points

import pytest

from dljobs.lifecycle import SWEEP_FINISHED, JobStatus, SweepStatus

pytestmark = pytest.mark.service

BASE = {
    "name": "tpe-digits",
    "dataset": {"type": "digits", "preprocess": [{"type": "mean_image"}, {"type": "std"}]},
    "model": {"layers": [{"type": "flatten"}, {"type": "affine", "units": 32},
                         {"type": "relu"}, {"type": "affine", "units": 10}]},
    "optimizer": {"type": "sgd", "lr": 0.01},
    "training": {"epochs": 2, "batch_size": 64, "seed": 0},
}


def requirement_names(dist: str) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in distribution(dist).requires or []}


def test_the_plugin_is_installed_as_its_own_distribution_with_optuna_its_dependency_only():
    found = [ep for ep in entry_points(group="dljobs.search_methods") if ep.name == "tpe"]
    assert [(ep.value, ep.dist.metadata["Name"]) for ep in found] == [("dljobs_optuna.tpe:TPE", "dljobs-optuna")]
    assert {"dljobs", "optuna"} <= requirement_names("dljobs-optuna")
    assert "optuna" not in requirement_names("dljobs")


def test_the_api_lists_tpe_with_its_distribution_version_and_options(sweep_service):
    listing = sweep_service.http.get(f"{sweep_service.base_url}/api/v1/plugins", timeout=30)
    assert listing.status_code == 200, listing.text
    rows = [r for r in listing.json()["search_methods"] if r["name"] == "tpe"]
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["distribution"], row["version"], row["error"]) == ("dljobs-optuna", "0.1.0", None)
    assert set(row["params"]["properties"]) == {"trials", "seed", "n_startup_trials"}


def test_a_6_trial_tpe_sweep_runs_to_completion_on_real_workers(sweep_service):
    svc = sweep_service
    body = {"name": "tpe-6", "base": BASE, "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": {"type": "tpe", "trials": 6, "n_startup_trials": 3, "seed": 0},
            "metric": "val_accuracy", "max_concurrent": 2}
    created = svc.http.post(f"{svc.base_url}/api/v1/sweeps", json=body, timeout=30)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    deadline = time.monotonic() + 300
    while True:
        sweep = svc.http.get(f"{svc.base_url}/api/v1/sweeps/{sweep_id}", timeout=30).json()
        if sweep["status"] in SWEEP_FINISHED or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sweep["status"] == SweepStatus.SUCCEEDED, (sweep, svc.procs.logs())
    board = sweep["leaderboard"]
    assert len(board) == 6 and all(row["status"] == JobStatus.SUCCEEDED for row in board), board
    accuracies = [row["val_accuracy"] for row in board]
    assert accuracies == sorted(accuracies, reverse=True)
    assert sweep["best_job_id"] == board[0]["job_id"]
    lrs = [row["params"]["optimizer.lr"] for row in board]
    assert len(set(lrs)) == 6 and all(1e-3 <= lr <= 1.0 for lr in lrs)
    assert sweep["method_state"]["asked"] == sweep["method_state"]["told"] == 6
    # every trial is an ordinary job of the sweep, listed with the others
    jobs = svc.http.get(f"{svc.base_url}/api/v1/jobs", timeout=30).json()
    listed = {j["id"]: j for j in jobs["jobs"]}
    assert {row["job_id"] for row in board} <= set(listed)
    assert all(listed[row["job_id"]]["sweep_id"] == sweep_id for row in board)


def test_bad_tpe_options_are_refused_at_submission_naming_the_field(sweep_service):
    svc = sweep_service
    body = {"name": "tpe-bad", "base": BASE, "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": {"type": "tpe", "trials": 6, "n_startup_trials": 0}, "metric": "val_accuracy"}
    refused = svc.http.post(f"{svc.base_url}/api/v1/sweeps", json=body, timeout=30)
    assert refused.status_code == 422 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert "method.n_startup_trials" in [e["field"] for e in refused.json()["errors"]]
