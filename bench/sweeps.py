"""The sweep figures of `make bench`: what search methods find on `digits`, and what they cost.

Each figure runs real sweeps through the HTTP API of ``dljobs up --workers N`` (the API and N
``dljobs worker`` processes, in a temporary data dir, on PostgreSQL and Redis when they answer:
see :func:`service`), as a person would, and reads the leaderboards the API answers:

- ``random16``: a random search of 16 trials over the learning rate and the L2 strength;
- ``asha27``: ASHA over 27 trials (rungs at 1 and 3 epochs, 9 at most, reduction 3): the
  epochs it trained against every trial trained to 9, and its best against the best of the
  same 27 configurations trained to 9 each (a ``random`` sweep with the same seed draws the
  same points: both methods draw trial ``i`` from ``trial_rng(seed, i)``);
- ``coarse_to_fine_vs_random``: coarse_to_fine (12 trials of 1 epoch, then 4 of 3) against
  random (8 trials of 3 epochs) at the same budget of 24 epochs, best of each, for 3 seeds;
- ``sweep8_wall_s_w1``, ``_w2``, ``_w4``: the wall time of an 8-trial random sweep (3 epochs a
  trial, all 8 allowed at once), from its submission to its end, median of 3, with 1, 2 and 4
  worker processes (on a 2-core machine 4 processes
  cannot beat 2: the figure shows what the scheduler adds, not more cores).

Small nets and few epochs keep the whole run under three minutes. ``python -m bench.sweeps``
prints the dict; ``python -m bench`` stores it under ``sweeps``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from dljobs import testsupport
from dljobs.embedded import free_port, wait_ready, wait_workers_ready
from dljobs.lifecycle import SWEEP_FINISHED, JobStatus
from dljobs.settings import BLAS_THREAD_VARIABLES

DLJOBS = str(Path(sys.executable).with_name("dljobs"))

BASE = {  # a small digits MLP: a trial is mostly the service's work, training a fraction of a second
    "name": "bench-sweep",
    "dataset": {"type": "digits", "val_fraction": 0.2, "seed": 0,
                "preprocess": [{"type": "mean_image"}, {"type": "std"}]},
    "model": {"architecture": "mlp", "hidden": [64], "activation": "relu"},
    "regularization": [{"type": "l2", "strength": 1e-4}],
    "optimizer": {"type": "sgd", "lr": 0.01},
    "training": {"epochs": 3, "batch_size": 64, "seed": 0},
}

#: CS231n's two dimensions: the learning rate and the regularization strength, both in log space.
SPACE = {
    "optimizer.lr": {"loguniform": [1e-4, 1.0]},
    "regularization[0].strength": {"loguniform": [1e-6, 1.0]},
}


class Service:
    """``dljobs up`` on a temporary data dir: its URL and an HTTP session with its admin token."""

    def __init__(self, base_url: str, http: requests.Session):
        self.base_url = base_url
        self.http = http

    def submit(self, name: str, method: dict, base: dict | None = None, max_concurrent: int = 4) -> str:
        body = {"name": name, "base": {**(base or BASE), "name": name}, "space": SPACE,
                "method": method, "metric": "val_accuracy", "max_concurrent": max_concurrent}
        response = self.http.post(f"{self.base_url}/api/v1/sweeps", json=body, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"the sweep {name} was refused: {response.status_code} {response.text[:2000]}")
        return response.json()["id"]

    def wait(self, sweep_id: str, timeout_s: float = 600) -> dict:
        """The sweep's answer once it has ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = self.http.get(f"{self.base_url}/api/v1/sweeps/{sweep_id}", timeout=30)
            response.raise_for_status()
            sweep = response.json()
            if sweep["status"] in SWEEP_FINISHED:
                return sweep
            time.sleep(0.25)
        raise TimeoutError(f"sweep {sweep_id} has not ended after {timeout_s} s: {sweep['status']}")

    def run(self, name: str, method: dict, **kwargs) -> tuple[dict, float]:
        """(the ended sweep's answer, seconds from its submission to its end)."""
        started = time.perf_counter()
        sweep = self.wait(self.submit(name, method, **kwargs))
        return sweep, time.perf_counter() - started


def backends_available() -> bool:
    return testsupport.postgres_available() and testsupport.redis_available()


@contextmanager
def service(workers: int, embedded: bool = False) -> Iterator[Service]:
    """``dljobs up --workers N`` with one BLAS thread per worker, stopped (with its children) after.

    On PostgreSQL and Redis (a fresh database and Redis DB number each time) when they answer on
    127.0.0.1, as in production; else (or with ``embedded``) on the embedded default.
    """
    with tempfile.TemporaryDirectory(prefix="dljobs-bench-sweeps-") as tmp, ExitStack() as stack:
        data = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DLJOBS_") and k not in BLAS_THREAD_VARIABLES}
        env.update({"DLJOBS_DATA_DIR": str(data), "DLJOBS_BLAS_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        if not embedded and backends_available():
            env["DLJOBS_DATABASE_URL"] = stack.enter_context(testsupport.fresh_postgres_database())
            env["DLJOBS_BROKER_URL"] = stack.enter_context(testsupport.fresh_redis_url())
        port = free_port()
        log_path = Path(tmp) / "up.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [DLJOBS, "up", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, 90, process)
            wait_workers_ready([log_path], workers, 90, process)
            token_file = data / "token"
            deadline = time.monotonic() + 30
            while not (token_file.exists() and token_file.read_text().strip()) and time.monotonic() < deadline:
                time.sleep(0.1)
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
            yield Service(base, http)
        except Exception:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
            raise
        finally:
            testsupport.stop_process_group(process, grace_s=40)


def scores(sweep: dict) -> list[float]:
    """The val accuracies of the leaderboard's trials that have one, best first."""
    return [row["val_accuracy"] for row in sweep["leaderboard"] if row.get("val_accuracy") is not None]


def epochs_trained(sweep: dict) -> int:
    return sum(int(row.get("epochs") or 0) for row in sweep["leaderboard"])


def random16(svc: Service) -> dict:
    sweep, wall = svc.run("bench-random16", {"type": "random", "trials": 16, "seed": 0})
    found = scores(sweep)
    return {"trials": len(sweep["leaderboard"]), "with_metric": len(found),
            "best_val_accuracy": round(found[0], 4), "median_val_accuracy": round(statistics.median(found), 4),
            "best_params": sweep["leaderboard"][0]["params"], "wall_s": round(wall, 2)}


def asha27(svc: Service) -> dict:
    asha, wall = svc.run("bench-asha27", {"type": "asha", "trials": 27, "min_epochs": 1, "max_epochs": 9,
                                          "reduction": 3, "seed": 0})
    full, full_wall = svc.run("bench-full27", {"type": "random", "trials": 27, "seed": 0},
                              base={**BASE, "training": {**BASE["training"], "epochs": 9}})
    best, full_best = scores(asha)[0], scores(full)[0]
    used, all_to_max = epochs_trained(asha), 27 * 9
    return {"trials": len(asha["leaderboard"]), "epochs_used": used, "epochs_every_trial_to_max": all_to_max,
            "epochs_fraction": round(used / all_to_max, 3),
            "trials_stopped_early": sum(1 for row in asha["leaderboard"] if row["status"] == JobStatus.STOPPED_EARLY),
            "best_val_accuracy": round(best, 4), "full_budget_best_val_accuracy": round(full_best, 4),
            "best_gap": round(full_best - best, 4), "wall_s": round(wall, 2), "full_budget_wall_s": round(full_wall, 2)}


def coarse_to_fine_vs_random(svc: Service, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Best val accuracy of each method at the same epoch budget, per seed (one sweep of each
    per seed: the best of one sweep is a noisy figure) and on average."""
    stages = [{"trials": 12, "epochs": 1}, {"trials": 4, "epochs": 3}]
    budget = sum(s["trials"] * s["epochs"] for s in stages)
    c2f_best, random_best, narrowed = [], [], None
    for seed in seeds:
        c2f, _ = svc.run(f"bench-c2f-{seed}", {"type": "coarse_to_fine", "stages": stages, "seed": seed})
        rnd, _ = svc.run(f"bench-random-budget-{seed}", {"type": "random", "trials": budget // 3, "seed": seed})
        assert epochs_trained(c2f) == epochs_trained(rnd) == budget, (epochs_trained(c2f), epochs_trained(rnd))
        c2f_best.append(round(scores(c2f)[0], 4))
        random_best.append(round(scores(rnd)[0], 4))
        narrowed = narrowed or c2f["method_state"]["stages"][1]["ranges"]
    return {"epoch_budget": budget, "stages": stages, "random_trials": budget // 3, "seeds": list(seeds),
            "coarse_to_fine_best_val_accuracy": c2f_best, "random_best_val_accuracy": random_best,
            "coarse_to_fine_mean_best": round(statistics.mean(c2f_best), 4),
            "random_mean_best": round(statistics.mean(random_best), 4),
            "coarse_to_fine_stage2_ranges_seed0": narrowed}


def run(wall_workers: tuple[int, ...] = (1, 2, 4), wall_repeats: int = 3, embedded: bool = False) -> dict:
    """Every sweep figure, as the ``sweeps`` entry of bench/results.json."""
    began = time.perf_counter()
    out: dict = {}
    with service(workers=2, embedded=embedded) as svc:
        out["random16"] = random16(svc)
        out["asha27"] = asha27(svc)
        out["coarse_to_fine_vs_random"] = coarse_to_fine_vs_random(svc)
    for workers in wall_workers:
        with service(workers=workers, embedded=embedded) as svc:
            walls = []
            for repeat in range(wall_repeats):
                sweep, wall = svc.run(f"bench-sweep8-w{workers}-{repeat}",
                                      {"type": "random", "trials": 8, "seed": 1}, max_concurrent=8)
                assert len(scores(sweep)) == 8, sweep["leaderboard"]
                walls.append(wall)
            out[f"sweep8_wall_s_w{workers}"] = round(statistics.median(walls), 2)
    out["backend"] = "postgresql+redis" if backends_available() and not embedded else "embedded"
    out["cores"] = os.cpu_count()
    out["total_s"] = round(time.perf_counter() - began, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweeps", description=__doc__.splitlines()[0])
    parser.add_argument("--embedded", action="store_true",
                        help="run on the embedded default (SQLite, filesystem broker) even when PostgreSQL and Redis answer")
    args = parser.parse_args(argv)
    print(json.dumps(run(embedded=args.embedded), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
