"""docker-compose.yml is valid, and its services' commands run the production topology:
migrate, gunicorn and two Celery workers against the local PostgreSQL and Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from sklearn.datasets import load_digits

from dljobs import testsupport
from dljobs.embedded import free_port, wait_ready, wait_workers_ready
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
API = "/api/v1"


def test_compose_declares_the_production_topology():
    assert {"postgres", "redis", "migrate", "api", "worker", "flower"} <= set(SERVICES)
    for name in ("postgres", "redis", "api", "worker"):
        assert "healthcheck" in SERVICES[name], f"{name} has a healthcheck"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["command"] == ["dljobs", "db", "upgrade"]
    assert "gthread" in SERVICES["api"]["command"]
    assert "ports" not in SERVICES["worker"], "workers scale with --scale worker=N"
    assert (ROOT / "Dockerfile").exists()


def test_docker_compose_config_is_valid():
    binary = shutil.which("docker-compose")
    require_service(binary is not None, "docker-compose binary not installed (apt-get install docker-compose)")
    result = subprocess.run([binary, "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def _environment(service: str, overrides: dict) -> dict:
    env = dict(os.environ)
    declared = SERVICES[service].get("environment") or {}
    env.update({k: str(v) for k, v in declared.items()})
    env.update(overrides)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _digits_spec(seed: int) -> dict:
    return {
        "name": f"compose-{seed}",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 32, "seed": seed},
    }


@pytest.mark.service
def test_compose_commands_run_eight_jobs_on_postgres_redis_and_two_workers(tmp_path):
    from dlcore.loading import load_model

    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    with testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url:
        port = free_port()
        overrides = {
            "DLJOBS_DATABASE_URL": db_url,
            "DLJOBS_BROKER_URL": redis_url,
            "DLJOBS_DATA_DIR": str(tmp_path / "data"),
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}",
        }
        migrate = subprocess.run(SERVICES["migrate"]["command"], env=_environment("migrate", overrides),
                                 capture_output=True, text=True, check=False, timeout=120)
        assert migrate.returncode == 0, migrate.stderr
        # auth is on by default: a token as an operator makes one (docker compose run api dljobs tokens create)
        made = subprocess.run(["dljobs", "tokens", "create", "--name", "compose", "--admin"],
                              env=_environment("api", overrides), capture_output=True, text=True, check=False,
                              timeout=120)
        assert made.returncode == 0, made.stderr
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {made.stdout.strip()}"
        processes = []
        try:
            for name in ("api", "worker", "worker"):
                with open(tmp_path / f"{name}-{len(processes)}.log", "wb") as log:
                    processes.append(subprocess.Popen(SERVICES[name]["command"], env=_environment(name, overrides),
                                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, 60, processes[0])
            # both workers consume before the jobs are sent, or the first one up takes them all
            wait_workers_ready([tmp_path / "worker-1.log", tmp_path / "worker-2.log"], 2, 90)
            ids = []
            for seed in range(8):
                response = http.post(f"{base}{API}/jobs", json=_digits_spec(seed), timeout=30)
                assert response.status_code == 201, response.text
                ids.append(response.json()["id"])
            jobs = {}
            deadline = time.monotonic() + 240
            while len(jobs) < len(ids) and time.monotonic() < deadline:
                for job_id in ids:
                    job = http.get(f"{base}{API}/jobs/{job_id}", timeout=30).json()
                    assert job["status"] not in ("failed", "cancelled"), job["error"]
                    if job["status"] == "succeeded":
                        jobs[job_id] = job
                time.sleep(0.5)
            assert len(jobs) == 8, "every job succeeded"
            assert len({j["worker"]["pid"] for j in jobs.values()}) == 2, "both workers took jobs"
            x = load_digits().images[:5].reshape(5, 1, 8, 8)
            for job_id in ids:
                points = http.get(f"{base}{API}/jobs/{job_id}/metrics", timeout=30).json()["points"]
                assert [p["kind"] for p in points].count("epoch") == 3
                model = load_model(http.get(f"{base}{API}/jobs/{job_id}/model", timeout=30).content)
                answer = http.post(f"{base}{API}/jobs/{job_id}/predict", json={"inputs": x.tolist()}, timeout=30)
                assert answer.status_code == 200, answer.text
                assert answer.json()["predictions"] == model.predict(x).tolist()
                assert np.allclose(answer.json()["probabilities"], model.predict_proba(x), atol=1e-6)
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, 15)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait()
