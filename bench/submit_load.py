"""The submit-load figure of `make bench`: many clients submitting at once, nothing lost.

2,000 jobs are submitted by 50 concurrent clients (threads, one token each, every job with
its own Idempotency-Key) over loopback to `dljobs api -w 2` (front door, two gunicorn
processes) on PostgreSQL and Redis, with no worker consuming, so every job stays queued.
Then: errors, accepted ids missing from the database (lost), keys stored twice
(duplicated), the broker messages per queued job after one reconcile pass (Redis LLEN of
the queue / jobs: at most 1), and the submit latency p50 and p99.

``python -m bench.submit_load`` prints it and merges it into ``service.submit_load`` of
bench/results.json; ``python -m bench`` runs it with the other service figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import redis
import requests

from dljobs import jobstore, testsupport, tokens
from dljobs.broker import redis_queue_lists
from dljobs.client import Client
from dljobs.embedded import free_port, wait_ready
from dljobs.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results.json"

SPEC = {  # small and valid: the figure is the API's, not training's
    "name": "bench-submit",
    "dataset": {"type": "digits"},
    "model": {"layers": [{"type": "affine", "units": 10}]},
    "optimizer": {"type": "sgd", "lr": 0.01},
    "training": {"epochs": 1, "batch_size": 256, "seed": 0},
}


def _tokens(database_url: str, clients: int) -> list[str]:
    """One token per client: each client is its own owner, as 50 users would be."""
    # deferred: the session factory only for the database this run created
    from dljobs.db.session import session_factory

    with session_factory(Settings(database_url=database_url))() as session:
        made = [tokens.create_token(session, f"bench-client-{i}") for i in range(clients)]
        session.commit()
    return made


def _client(base: str, token: str | None) -> Client:
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return Client(base, timeout=60, session=session)


def _submit_all(base: str, tokens: list[str | None], jobs: int) -> tuple[dict, list[float], list[str], float]:
    """({key: job id}, latencies in s, errors, wall time) of ``jobs`` submits over the clients."""
    accepted: dict[str, str] = {}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(tokens) + 1)

    def one_client(index: int) -> None:
        client = _client(base, tokens[index])
        mine = range(index, jobs, len(tokens))
        start.wait()
        for n in mine:
            key = f"bench-{index}-{n}"
            began = time.perf_counter()
            try:
                job = client.submit(SPEC, idempotency_key=key)
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none retried
                with lock:
                    errors.append(f"{key}: {exc!r}"[:300])
                continue
            elapsed = time.perf_counter() - began
            with lock:
                accepted[key] = job["id"]
                latencies.append(elapsed)

    threads = [threading.Thread(target=one_client, args=(i,), daemon=True) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return accepted, latencies, errors, time.perf_counter() - began


def run(jobs: int = 2000, clients: int = 50, processes: int = 2) -> dict | None:
    """The ``submit_load`` figures, or None without PostgreSQL and Redis on 127.0.0.1."""
    if not (testsupport.postgres_available() and testsupport.redis_available()):
        return None
    dljobs_cli = str(Path(sys.executable).parent / "dljobs")
    with (tempfile.TemporaryDirectory(prefix="dljobs-bench-load-") as tmp,
          testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url):
        env = dict(os.environ, DLJOBS_DATABASE_URL=db_url, DLJOBS_BROKER_URL=redis_url, DLJOBS_DATA_DIR=tmp)
        subprocess.run([dljobs_cli, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
        tokens = _tokens(db_url, clients)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(Path(tmp) / "api.log", "wb") as log:
            api = subprocess.Popen([dljobs_cli, "api", "--port", str(port), "-w", str(processes)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(base, 60, api)
            accepted, latencies, errors, wall_s = _submit_all(base, tokens, jobs)
        finally:
            testsupport.stop_process_group(api, grace_s=15)
        by_key, total = testsupport.jobs_by_idempotency_key(db_url)
        settings = Settings(database_url=db_url, broker_url=redis_url, data_dir=tmp)
        # One pass as `dljobs up` and the reconciler run it: a queued job sent less than
        # DLJOBS_RECONCILE_AFTER_S ago is not sent again, so the queue holds one message each.
        resent = jobstore.reconcile_queue(settings)
        broker = redis.Redis.from_url(redis_url)
        try:
            messages = sum(int(broker.llen(name)) for name in redis_queue_lists(settings.queue_name))
        finally:
            broker.close()
    lost = [key for key in accepted if by_key.get(key, (0, None))[1] != accepted[key]]
    duplicated = sum(count - 1 for count, _ in by_key.values() if count > 1)
    in_ms = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    return {
        "jobs": jobs,
        "clients": clients,
        "api_processes": processes,
        "auth_tokens": tokens[0] is not None,
        "accepted": len(accepted),
        "errors": len(errors),
        "first_errors": errors[:3],
        "lost": len(lost),
        "duplicated": duplicated,
        "stored_jobs": total,
        "resent_by_reconcile": len(resent),
        "broker_messages": messages,
        "broker_messages_per_job": round(messages / total, 3) if total else None,
        "submit_p50_ms": round(float(np.percentile(in_ms, 50)), 1),
        "submit_p99_ms": round(float(np.percentile(in_ms, 99)), 1),
        "submits_per_s": round(len(accepted) / wall_s, 1) if wall_s else None,
        "wall_s": round(wall_s, 1),
    }


def table(load: dict | None) -> str:
    if not load:
        return "  submit load: skipped (needs PostgreSQL and Redis on 127.0.0.1)"
    return (
        f"  submit load {load['jobs']} jobs / {load['clients']} clients / -w {load['api_processes']}: "
        f"{load['errors']} errors, {load['lost']} lost, {load['duplicated']} duplicated, "
        f"{load['broker_messages_per_job']} broker messages per job\n"
        f"              submit p50 {load['submit_p50_ms']:.1f} ms   p99 {load['submit_p99_ms']:.1f} ms   "
        f"{load['submits_per_s']} submits/s over {load['wall_s']} s"
    )


def write_results(load: dict | None, path: Path = RESULTS) -> None:
    """Merge ``load`` into ``service.submit_load`` of bench/results.json, keeping the rest."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = {}
    results.setdefault("service", {})["submit_load"] = load
    path.write_text(json.dumps(results, indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.submit_load", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="gunicorn worker processes (-w)")
    args = parser.parse_args(argv)
    load = run(args.jobs, args.clients, args.processes)
    print(table(load))
    write_results(load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
