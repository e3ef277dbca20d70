"""docker-compose.yml is valid, and its services' commands run the production topology:
migrate, gunicorn and two Celery workers against the local PostgreSQL and Redis."""

from __future__ import annotations

import os
import re
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
from dljobs.settings import Settings
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
API = "/api/v1"


def test_compose_declares_the_production_topology():
    assert {"postgres", "redis", "migrate", "api", "worker", "flower", "nginx"} <= set(SERVICES)
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


#: ``${NAME:-default}`` in the compose file: docker compose puts the variable or its default there.
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+):-([^}]*)\}")


def _interpolated(value: str) -> str:
    return VARIABLE.sub(lambda m: os.environ.get(m.group(1), m.group(2)), value)


def test_only_nginx_publishes_a_port_and_it_buffers_requests():
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"nginx"}, "clients reach the API only through nginx"
    nginx = SERVICES["nginx"]
    assert nginx["image"].startswith("nginx:")
    assert nginx["depends_on"]["api"]["condition"] == "service_healthy"
    mounted = [v.split(":")[0] for v in nginx["volumes"]]
    assert "./deploy/nginx.conf" in mounted
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "client_max_body_size",
                      "proxy_request_buffering on", "proxy_buffering off", "proxy_set_header Host $http_host"):
        assert directive in conf, directive
    limit_mib = int(re.search(r"client_max_body_size (\d+)m;", conf).group(1))

    assert limit_mib * 1024 * 1024 == Settings.model_fields["max_upload_bytes"].default
    assert "DLJOBS_ALLOWED_HOSTS" in SERVICES["api"]["environment"]


def test_redis_requires_the_password_every_url_carries():
    command = SERVICES["redis"]["command"]
    password = _interpolated(command[command.index("--requirepass") + 1])
    assert password, "redis-server --requirepass <password>"
    env = COMPOSE["x-dljobs-env"]
    assert _interpolated(env["DLJOBS_BROKER_URL"]) == f"redis://:{password}@redis:6379/0"
    for name in ("migrate", "api", "worker", "flower"):
        assert _interpolated(SERVICES[name]["environment"]["DLJOBS_BROKER_URL"]).startswith(f"redis://:{password}@")
    assert _interpolated(SERVICES["redis"]["environment"]["REDISCLI_AUTH"]) == password, "the healthcheck authenticates"


def _nginx_binary() -> str:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    require_service(binary is not None, "nginx not installed (apt-get install nginx)")
    return binary


def _local_nginx_conf(tmp_path: Path, listen_port: int, api_port: int, header_timeout_s: int = 10) -> Path:
    """deploy/nginx.conf pointed at local ports, wrapped in a main config that writes only under tmp_path."""
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    for original in ("server api:8000;", "listen 80;", "client_header_timeout 10s;"):
        assert original in site, original
    site = (site.replace("server api:8000;", f"server 127.0.0.1:{api_port};")
                .replace("listen 80;", f"listen 127.0.0.1:{listen_port};")
                .replace("client_header_timeout 10s;", f"client_header_timeout {header_timeout_s}s;"))
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"user root;\ndaemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n"
        f" proxy_temp_path {tmp_path}/proxy;\n include {tmp_path}/site.conf;\n}}\n"
    )
    return conf


def test_the_nginx_config_passes_nginx_t_against_a_local_upstream(tmp_path):
    binary = _nginx_binary()
    conf = _local_nginx_conf(tmp_path, free_port(), 8000)
    result = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(conf)],
                            capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.service
def test_nginx_in_front_of_plain_gunicorn_drops_slow_headers_and_keeps_healthz_fast(tmp_path):
    """The compose topology's answer to slow clients: gunicorn alone (no front door) behind nginx."""
    import socket  # deferred: only this test opens raw connections

    binary = _nginx_binary()
    data = tmp_path / "data"
    env = dict(os.environ, DLJOBS_DATA_DIR=str(data))
    env.pop("DLJOBS_DATABASE_URL", None)
    env.pop("DLJOBS_BROKER_URL", None)
    dljobs_cli = str(Path(sys.executable).parent / "dljobs")
    subprocess.run([dljobs_cli, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    api_port, nginx_port = free_port(), free_port()
    api = subprocess.Popen([dljobs_cli, "api", "--no-front-door", "--port", str(api_port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    conf = _local_nginx_conf(tmp_path, nginx_port, api_port, header_timeout_s=3)
    nginx = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    slow: list[socket.socket] = []
    try:
        base = f"http://127.0.0.1:{nginx_port}"
        wait_ready(base, 60, api)
        for _ in range(16):  # twice gunicorn's 8 threads, each holding half a request
            sock = socket.create_connection(("127.0.0.1", nginx_port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 1.0, latencies
        started = time.monotonic()
        slow[0].settimeout(10)
        while slow[0].recv(65536):  # nginx answers nothing and closes at client_header_timeout
            pass
        assert time.monotonic() - started < 8, "nginx closed the slow client at its header deadline"
    finally:
        for sock in slow:
            sock.close()
        testsupport.stop_process_group(nginx, grace_s=10)
        testsupport.stop_process_group(api, grace_s=10)


def test_docker_compose_config_is_valid():
    binary = shutil.which("docker-compose")
    require_service(binary is not None, "docker-compose binary not installed (apt-get install docker-compose)")
    result = subprocess.run([binary, "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


def _environment(service: str, overrides: dict) -> dict:
    env = dict(os.environ)
    declared = SERVICES[service].get("environment") or {}
    env.update({k: _interpolated(str(v)) for k, v in declared.items()})
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
