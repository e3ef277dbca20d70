"""Sweeps on real processes: ``dljobs api`` and two ``dljobs worker`` on PostgreSQL and Redis.

Each sweep trains tiny digits MLPs for a few epochs: these tests are about the scheduler,
the queue and the lifecycle, not about dlcore.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import time

import pytest
from sqlalchemy import func, select

from dljobs.db.models import Job, MetricPoint
from dljobs.lifecycle import FINISHED, JobStatus, StopReason, SweepStatus
from tests.e2e.conftest import DLJOBS, create_token, free_port, small_spec

pytestmark = [pytest.mark.service, pytest.mark.slow]


def wait_for(what, probe, timeout_s=120.0, logs=str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {timeout_s} s\n{logs()}")


def trial_jobs(service, sweep_id) -> list[Job]:
    with service.session() as session:
        return list(session.scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial_index)))


def lr_sweep(name, method, space=None, epochs=2, **over):
    body = {"name": name, "base": small_spec(name, epochs=epochs),
            "space": space or {"optimizer.lr": {"loguniform": [1e-4, 0.5]}},
            "method": method, "metric": "val_accuracy", "max_concurrent": 2}
    body.update(over)
    return body


def test_a_random_search_of_6_trials_on_2_workers_ranks_its_leaderboard(sweep_service):
    api = sweep_service.client()
    sweep = api.submit_sweep(lr_sweep("random6", {"type": "random", "trials": 6, "seed": 3},
                                      space={"optimizer.lr": {"loguniform": [1e-4, 0.2]}}))
    done = api.wait_sweep(sweep["id"], timeout=240)
    assert done["status"] == SweepStatus.SUCCEEDED, done
    board = done["leaderboard"]
    assert len(board) == 6 and {r["status"] for r in board} == {JobStatus.SUCCEEDED}, board
    accuracies = [r["val_accuracy"] for r in board]
    assert accuracies == sorted(accuracies, reverse=True)
    assert done["best_job_id"] == board[0]["job_id"]
    assert accuracies[0] > statistics.median(accuracies)
    jobs = trial_jobs(sweep_service, sweep["id"])
    assert len({(j.worker_host, j.worker_pid) for j in jobs}) == 2  # both workers took trials
    assert sorted(j.trial_index for j in jobs) == list(range(6))
    # every trial is an ordinary job: listed, with the lr it tried in its spec
    listed = {j["id"]: j for j in api.iter_jobs(status="succeeded")}
    for row in board:
        assert listed[row["job_id"]]["spec"]["optimizer"]["lr"] == row["params"]["optimizer.lr"]


def test_a_grid_sweep_runs_exactly_its_grid(sweep_service):
    api = sweep_service.client()
    space = {"optimizer.lr": {"choice": [0.01, 0.1]}, "model.layers[1].units": {"choice": [8, 16]}}
    sweep = api.submit_sweep(lr_sweep("grid4", {"type": "grid"}, space=space, epochs=1, max_concurrent=3))
    done = api.wait_sweep(sweep["id"], timeout=240)
    assert done["status"] == SweepStatus.SUCCEEDED
    jobs = trial_jobs(sweep_service, sweep["id"])
    assert sorted((j.spec["optimizer"]["lr"], j.spec["model"]["layers"][1]["units"]) for j in jobs) == [
        (0.01, 8), (0.01, 16), (0.1, 8), (0.1, 16)]
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}


def test_cancelling_a_sweep_stops_all_its_trials(sweep_service):
    api = sweep_service.client()
    sweep = api.submit_sweep(lr_sweep("cancel", {"type": "random", "trials": 8, "seed": 0}, epochs=400))
    wait_for("two trials running", lambda: sum(
        bool(j.status == JobStatus.RUNNING and (j.progress or {}).get("iteration"))
        for j in trial_jobs(sweep_service, sweep["id"])) == 2, logs=sweep_service.procs.logs)
    answer = api.cancel_sweep(sweep["id"])
    assert answer["status"] == SweepStatus.CANCELLED
    def all_finished():
        jobs = trial_jobs(sweep_service, sweep["id"])
        return jobs if all(j.status in FINISHED for j in jobs) else None

    jobs = wait_for("every trial finished", all_finished, logs=sweep_service.procs.logs)
    assert len(jobs) == 2  # no trial started after the cancel
    assert {j.status for j in jobs} == {JobStatus.CANCELLED}
    assert all((j.progress or {}).get("epoch", 0) < 400 for j in jobs)  # stopped cooperatively, mid-run
    time.sleep(2 * 1.0)  # two sweep ticks (DLJOBS_SWEEP_TICK_S=1): still nothing new
    assert len(trial_jobs(sweep_service, sweep["id"])) == 2


def test_asha_stops_some_trials_early_and_resumes_promoted_ones_from_their_checkpoints(sweep_service):
    api = sweep_service.client()
    method = {"type": "asha", "trials": 6, "min_epochs": 1, "max_epochs": 4, "reduction": 2, "seed": 5}
    sweep = api.submit_sweep(lr_sweep("asha", method, space={"optimizer.lr": {"loguniform": [1e-4, 0.2]}}))
    done = api.wait_sweep(sweep["id"], timeout=300)
    assert done["status"] == SweepStatus.SUCCEEDED, done
    jobs = trial_jobs(sweep_service, sweep["id"])
    stopped = [j for j in jobs if j.status == JobStatus.STOPPED_EARLY]
    full = [j for j in jobs if j.status == JobStatus.SUCCEEDED]
    assert stopped and full and len(stopped) + len(full) == 6, [(j.status, j.error_message) for j in jobs]
    assert {j.stop_reason for j in stopped} == {StopReason.SWEEP_STOPPED}
    assert all(j.stopped_epoch in (1, 2) for j in stopped)  # the rungs: 1 and 2 epochs of 4
    assert all(j.progress["epoch"] == 4 for j in full)
    with sweep_service.session() as session:
        for job in full:
            # promoted at each rung: handed back with a checkpoint, claimed again, resumed there
            assert job.handbacks == 2 and job.attempt == 3
            first_of_each = dict(session.execute(
                select(MetricPoint.attempt, func.min(MetricPoint.iteration))
                .where(MetricPoint.job_id == job.id, MetricPoint.kind == "iteration")
                .group_by(MetricPoint.attempt)).all())
            assert first_of_each[1] == 1 and first_of_each[2] > 1 and first_of_each[3] > first_of_each[2]
    assert done["method_state"]["rungs"][0]["results"] == 6


def test_a_priority_9_job_starts_before_the_remaining_trials_of_a_20_trial_sweep(sweep_service):
    alice = sweep_service.token_client(create_token(sweep_service.procs, "alice", "--owner", "alice"))
    bob = sweep_service.token_client(create_token(sweep_service.procs, "bob", "--owner", "bob"))
    sweep = alice.submit_sweep(lr_sweep("crowd", {"type": "random", "trials": 20, "seed": 1}, epochs=3,
                                        max_concurrent=20, priority=0))
    spec = small_spec("bob-urgent", epochs=1)
    spec["training"]["priority"] = 9
    urgent = bob.submit(spec)
    done = bob.wait(urgent["id"], timeout=120)
    assert done["status"] == JobStatus.SUCCEEDED
    alice.wait_sweep(sweep["id"], timeout=300)
    with sweep_service.session() as session:
        submitted_at = session.get(Job, urgent["id"]).created_at
        started_at = session.get(Job, urgent["id"]).started_at
    trials = trial_jobs(sweep_service, sweep["id"])
    assert len(trials) == 20 and {t.owner for t in trials} == {"alice"} and {t.priority for t in trials} == {0}
    remaining = [t for t in trials if t.started_at > submitted_at]  # still queued when bob submitted
    assert len(remaining) >= 10
    overtook = [t for t in remaining if t.started_at < started_at]
    # at most the worker that was already between two trials: never the sweep's queue ahead of bob
    assert len(overtook) <= 2, [(t.trial_index, t.started_at) for t in overtook]


def run_cli(service, *args, stdin=None):
    env = dict(service.procs.env, DLJOBS_URL=service.base_url, DLJOBS_TOKEN=service.token)
    return subprocess.run([*DLJOBS, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300,
                          check=False)


def test_dljobs_sweep_follows_the_leaderboard_and_says_how_it_ended(sweep_service, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(lr_sweep("cli", {"type": "grid"}, epochs=1,
                                        space={"optimizer.lr": {"choice": [0.01, 0.05]}})))
    done = run_cli(sweep_service, "sweep", str(good), "--follow", "--poll", "0.2")
    assert done.returncode == 0, done.stdout + done.stderr
    last_table = done.stdout.strip().split("\n\n")[-1]
    assert f": {SweepStatus.SUCCEEDED};" in last_table.splitlines()[0]
    assert len([line for line in last_table.splitlines() if "optimizer.lr=" in line]) == 2
    # every trial diverges: the sweep fails, exit 1
    diverging = lr_sweep("cli-bad", {"type": "grid"}, epochs=2, space={"optimizer.lr": {"choice": [50.0, 80.0]}})
    failed = run_cli(sweep_service, "sweep", "-", "--follow", "--poll", "0.2", stdin=json.dumps(diverging))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f": {SweepStatus.FAILED};" in failed.stdout
    # refused: exit 2, with the field at fault
    bad = run_cli(sweep_service, "sweep", "-", stdin=json.dumps(lr_sweep("x", {"type": "grid"},
                                                                        space={"optimizer.lr": {"int": [1]}})))
    assert bad.returncode == 2 and "space.optimizer.lr:" in bad.stderr
    # nobody there: exit 3
    env_url = f"http://127.0.0.1:{free_port()}"
    gone = subprocess.run([*DLJOBS, "sweep", str(good), "--url", env_url], env=sweep_service.procs.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode == 3 and "cannot reach" in gone.stderr
    # --url that is no URL: a usage error, exit 2, like every service command
    typo = subprocess.run([*DLJOBS, "sweep", str(good), "--url", "localhost:1"], env=sweep_service.procs.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert typo.returncode == 2 and "not a service URL" in typo.stderr, typo.stderr


def test_ctrl_c_stops_following_a_sweep_not_the_sweep(sweep_service, tmp_path):
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps(lr_sweep("ctrl-c", {"type": "grid"}, epochs=30,
                                        space={"optimizer.lr": {"choice": [0.01, 0.02]}})))
    env = dict(sweep_service.procs.env, DLJOBS_URL=sweep_service.base_url, DLJOBS_TOKEN=sweep_service.token)
    watcher = subprocess.Popen([*DLJOBS, "sweep", str(spec), "--follow", "--poll", "0.2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = watcher.stdout.readline()  # "sweep <id> submitted ..."
        table = watcher.stdout.readline()  # the leaderboard's first line: it is following now
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 130, first + table + out + err
    sweep_id = first.split()[1]
    assert f"sweep {sweep_id} keeps running" in err and "Traceback" not in err
    api = sweep_service.client()
    status = api.sweep(sweep_id)["status"]
    assert status not in (SweepStatus.CANCELLED, SweepStatus.FAILED), status
    api.cancel_sweep(sweep_id)
