"""The many-viewers figure of `make bench`: 100 event streams on one API process.

``dljobs api`` (the front door, one gunicorn process) on a fresh PostgreSQL database.
Ten jobs have ten viewers each; their progress is written the way a worker writes it
(``dljobs.jobstore``: claim, report, finish) from this process, so the API alone is
measured.  Meanwhile a probe in a process of its own (the hundred readers here would
otherwise lend their share of this process's GIL to every figure) polls ``/healthz`` and
the job list: their p50 and p99 are the figures.  Each stream is also checked against
the event log (complete, in order), which ``tests/e2e/test_e2e_streams_many.py`` asserts.

``python -m bench.streams`` prints it and merges ``service.streams`` into bench/results.json.
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
import requests

from bench import results_file
from bench.results_file import RESULTS
from dljobs import jobstore, testsupport, tokens
from dljobs.client import parse_sse
from dljobs.db.migrate import upgrade
from dljobs.db.models import JobEvent
from dljobs.embedded import free_port, wait_ready
from dljobs.lifecycle import JobStatus
from dljobs.settings import Settings

#: The probe: polls each path in turn until its stdin closes, then prints {path: [seconds]}
#: (a status other than 200 ends it with that status on stderr).
PROBE = """
import json, sys, threading, time, requests
base, token, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
http = requests.Session()
http.headers["Authorization"] = "Bearer " + token
seen = {p: [] for p in paths}
while not done.is_set():
    for p in paths:
        started = time.perf_counter()
        resp = http.get(base + p, timeout=10)
        seen[p].append(time.perf_counter() - started)
        if resp.status_code != 200:
            sys.exit(f"{p}: {resp.status_code} {resp.text[:200]}")
    time.sleep(0.02)
print(json.dumps(seen))
"""
PROBED = {"healthz": "/healthz", "joblist": "/api/v1/jobs?limit=20"}


def simulate_worker(session_factory, job_id: str, reports: int, go: threading.Event,
                    pause_s: float = 0.1) -> None:
    """Claim, write ``reports`` progress+metric reports ``pause_s`` apart, then succeed."""
    go.wait()
    with session_factory() as session:
        attempt = jobstore.claim(session, job_id, "bench-sim", os.getpid(), 30)
        for i in range(1, reports + 1):
            time.sleep(pause_s)
            jobstore.report(session, job_id, attempt,
                            progress={"iteration": i, "iterations": reports, "epoch": i / 20,
                                      "epochs": max(1, reports // 20), "percent": 100 * i / reports,
                                      "eta_s": 1.0},
                            points=[{"kind": "iteration", "iteration": i, "epoch": i / 20,
                                     "values": {"loss": 1.0 / i}}])
        jobstore.finish(session, job_id, attempt, JobStatus.SUCCEEDED,
                        metrics={"val_accuracy": 0.5, "train_accuracy": 0.5,
                                 "val_loss": 1.0, "train_loss": 1.0})


def follow(http: requests.Session, url: str, opened: threading.Semaphore, out: list, errors: list) -> None:
    """Read one stream to its end into ``out``; ``opened`` is released once, when it is open
    (or broken)."""
    released = False
    try:
        with http.get(url, stream=True, timeout=(10, 60)) as resp:
            if resp.status_code != 200:
                errors.append(f"{resp.status_code} {resp.text[:200]}")
                return
            lines = resp.iter_lines(decode_unicode=True)
            if not next(lines).startswith("retry:"):
                errors.append("the stream did not begin with its retry line")
            opened.release()
            released = True
            out.extend(parse_sse(lines))
    except Exception as exc:  # noqa: BLE001 - every broken stream is reported, with why
        errors.append(repr(exc))
    finally:
        if not released:
            opened.release()


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(seconds) * 1e3, q)), 1)


def many_streams(base: str, token: str, session_factory, jobs: int = 10, viewers: int = 10,
                 reports: int = 60) -> dict:
    """Run the scenario against the API at ``base``; returns the figures and what each stream got.

    Returns: ``{"streams", "errors", "incomplete", "<probe>_p50_ms", "<probe>_p99_ms",
    "<probe>_requests", "events": {job_id: [[(id, type) ...] per viewer]}, "logged": {job_id:
    [(id, type) ...]}}``; ``incomplete`` counts the streams that differ from the event log.
    """
    with session_factory() as session:
        job_ids = [jobstore.create_job(session, {"name": f"view{i}"}, {}, f"view{i}").id for i in range(jobs)]
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    streams = [(job_id, []) for job_id in job_ids for _ in range(viewers)]
    errors: list[str] = []
    opened = threading.Semaphore(0)
    readers = [threading.Thread(target=follow, args=(http, f"{base}/api/v1/jobs/{job_id}/events", opened,
                                                     out, errors), daemon=True) for job_id, out in streams]
    for reader in readers:
        reader.start()
    for _ in readers:
        if not opened.acquire(timeout=60):
            errors.append("a stream did not open within 60 s")
            break
    go = threading.Event()
    writers = [threading.Thread(target=simulate_worker, args=(session_factory, job_id, reports, go))
               for job_id in job_ids]
    for writer in writers:
        writer.start()
    probe = subprocess.Popen([sys.executable, "-c", PROBE, base, token, *PROBED.values()],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    go.set()
    for writer in writers:
        writer.join(timeout=300)
    out, err = probe.communicate("", timeout=60)  # closing its stdin ends the probe
    if probe.returncode != 0:
        errors.append(f"probe: {err.strip()[-300:]}")
    for reader in readers:
        reader.join(timeout=60)
        if reader.is_alive():
            errors.append("a stream did not end after its job finished")
    with session_factory() as session:
        logged = {job_id: [(e.id, e.type) for e in session.query(JobEvent).filter_by(job_id=job_id)
                           .order_by(JobEvent.id)] for job_id in job_ids}
    events: dict[str, list] = {job_id: [] for job_id in job_ids}
    for job_id, got in streams:
        events[job_id].append(got)
    figures = {"streams": len(streams), "errors": errors,
               "incomplete": sum([(e["id"], e["event"]) for e in got] != logged[job_id] for job_id, got in streams),
               "events": events, "logged": logged}
    seen = json.loads(out) if probe.returncode == 0 else {}
    for name, path in PROBED.items():
        samples = seen.get(path) or [float("nan")]
        figures[f"{name}_requests"] = len(seen.get(path) or [])
        figures[f"{name}_p50_ms"] = percentile_ms(samples, 50)
        figures[f"{name}_p99_ms"] = percentile_ms(samples, 99)
    return figures


def run(jobs: int = 10, viewers: int = 10, reports: int = 60) -> dict | None:
    """The ``streams`` figures (no per-event detail), or None without PostgreSQL on 127.0.0.1."""
    if not testsupport.postgres_available():
        return None
    # deferred: the session factory only for the database this run created
    from dljobs.db.session import session_factory

    dljobs_cli = str(Path(sys.executable).parent / "dljobs")
    with tempfile.TemporaryDirectory(prefix="dljobs-bench-streams-") as tmp, \
            testsupport.fresh_postgres_database() as db_url:
        upgrade(db_url)
        factory = session_factory(Settings(database_url=db_url))
        with factory() as session:
            admin = tokens.create_token(session, "bench-streams", admin=True)
        env = dict(os.environ, DLJOBS_DATABASE_URL=db_url, DLJOBS_DATA_DIR=tmp,
                   DLJOBS_MAX_STREAMS_PER_TOKEN=str(jobs * viewers + 10))  # one token opens them all
        env.pop("DLJOBS_BROKER_URL", None)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(Path(tmp) / "api.log", "wb") as log:
            api = subprocess.Popen([dljobs_cli, "api", "--port", str(port)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(base, 60, api)
            figures = many_streams(base, admin, factory, jobs, viewers, reports)
        finally:
            testsupport.stop_process_group(api, grace_s=15)
    figures.pop("events")
    figures.pop("logged")
    figures["errors"] = figures["errors"][:3]
    return figures


def table(figures: dict | None) -> str:
    if not figures:
        return "  event streams: skipped (needs PostgreSQL on 127.0.0.1)"
    return (f"  {figures['streams']} event streams on one API process ({figures['incomplete']} incomplete, "
            f"{len(figures['errors'])} errors):\n"
            f"    GET /healthz   p50 {figures['healthz_p50_ms']:7.1f} ms   p99 {figures['healthz_p99_ms']:7.1f} ms"
            f"   ({figures['healthz_requests']} requests)\n"
            f"    GET /jobs      p50 {figures['joblist_p50_ms']:7.1f} ms   p99 {figures['joblist_p99_ms']:7.1f} ms"
            f"   ({figures['joblist_requests']} requests)")


def write_results(figures: dict | None, path: Path = RESULTS) -> None:
    """Merge ``figures`` into ``service.streams`` of bench/results.json, keeping the rest."""
    results_file.merge(("service", "streams"), figures, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=10, help="streams per job")
    parser.add_argument("--reports", type=int, default=60, help="progress writes per job, 0.1 s apart")
    args = parser.parse_args(argv)
    figures = run(args.jobs, args.viewers, args.reports)
    print(table(figures))
    write_results(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
