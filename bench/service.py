"""The service figures of `make bench`: dispatch latency, idle CPU and bookkeeping overhead.

- dispatch: submit -> running p50 (the job row written and the task sent as the API does,
  until a real Celery worker has claimed it: ``started_at``), on the embedded filesystem
  broker and on Redis (127.0.0.1:6379, a random emptied database), one job at a time;
- idle CPU: what one idle worker (its Celery parent and pool child) uses while it waits
  for work, as a percentage of one core;
- bookkeeping: a job's time through the service (``started_at`` -> ``finished_at`` on a
  real worker: claim, data, training with progress and checkpoints, model stored, done)
  against ``dljobs train`` of the same spec (validate and train in this process), for the
  digits MLP example and a 20-epoch MLP, interleaved, median of rounds.

``python -m bench.service`` prints the table and merges ``service`` into
``bench/results.json``; ``python -m bench`` runs it after the networks.
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
from contextlib import ExitStack, contextmanager
from pathlib import Path

from threadpoolctl import threadpool_limits

from bench import results_file
from bench.results_file import RESULTS
from dlcore.spec import validate
from dlcore.training import train
from dljobs import jobstore, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.lifecycle import JobStatus
from dljobs.settings import BLAS_THREAD_VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[1]

TINY = {  # one iteration: the job is all dispatch and bookkeeping
    "name": "bench-tiny",
    "dataset": {"type": "digits"},
    "model": {"layers": [{"type": "affine", "units": 10}]},
    "optimizer": {"type": "sgd", "lr": 0.01},
    "training": {"epochs": 1, "batch_size": 2048, "seed": 0},
}


def digits_mlp() -> dict:
    return json.loads((ROOT / "examples" / "digits_mlp.json").read_text())


def mlp_20_epochs() -> dict:
    spec = digits_mlp()
    spec["name"] = "mlp-20-epochs"
    spec["model"] = {"architecture": "mlp", "hidden": [256, 256], "activation": "relu"}
    spec["training"]["epochs"] = 20
    return spec


@contextmanager
def worker(data_dir: Path, broker_url: str | None = None, database_url: str | None = None, name: str = "worker"):
    """A real worker (``dljobs worker``) on these settings, logging to ``<data_dir>/<name>.log``;
    yields (settings, its process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLJOBS_") and k not in BLAS_THREAD_VARIABLES}
    env.update({"DLJOBS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    if broker_url:
        env["DLJOBS_BROKER_URL"] = broker_url
    if database_url:
        env["DLJOBS_DATABASE_URL"] = database_url
    settings = Settings(data_dir=data_dir, broker_url=broker_url, database_url=database_url)
    settings.ensure_dirs()
    upgrade(settings.effective_database_url)
    log_path = data_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from dljobs.cli import main; main()", "worker", "--loglevel", "WARNING"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        # --loglevel WARNING hides "ready.": wait for the pool child instead
        deadline = time.monotonic() + 60
        while not _children(process.pid) and time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # consumer set up
        yield settings, process
    finally:
        testsupport.stop_process_group(process)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_ticks(pids) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def submit(settings: Settings, spec: dict) -> tuple[str, float]:
    """Write the job row and send its task as the API does; (job id, time.time() before)."""
    sent = time.time()
    with session_factory(settings)() as session:
        job_id = jobstore.create_job(session, spec, None).id
    jobstore.enqueue(job_id, settings)
    return job_id, sent


def wait_finished(settings: Settings, job_id: str, timeout_s: float = 120) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_factory(settings)() as session:
            job = session.get(Job, job_id)
            if job.finished_at is not None:
                session.expunge(job)
                return job
            status, attempt = job.status, job.attempt
        time.sleep(0.02)
    log = settings.data_path / "worker.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no worker log)"
    raise TimeoutError(f"job {job_id} is {status} (attempt {attempt}) after {timeout_s} s; the worker's log:\n{tail}")


def _seconds(a, b) -> float:
    return (b - a).total_seconds()


def dispatch(settings: Settings, rounds: int) -> dict:
    """submit -> running (claimed) and submit -> finished of one-iteration jobs, one at a time."""
    to_running, end_to_end = [], []
    for _ in range(rounds):
        job_id, sent = submit(settings, TINY)
        job = wait_finished(settings, job_id)
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error_message)
        to_running.append(job.started_at.timestamp() - sent)
        end_to_end.append(job.finished_at.timestamp() - sent)
        time.sleep(0.05)
    return {
        "submit_to_running_p50_ms": round(1e3 * statistics.median(to_running), 1),
        "submit_to_running_max_ms": round(1e3 * max(to_running), 1),
        "one_iteration_job_p50_ms": round(1e3 * statistics.median(end_to_end), 1),
        "rounds": rounds,
    }


def idle_cpu_percent(process: subprocess.Popen, seconds: float) -> float:
    pids = [process.pid, *_children(process.pid)]
    before, t0 = _cpu_ticks(pids), time.monotonic()
    time.sleep(seconds)
    used = (_cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK")
    return round(100.0 * used / (time.monotonic() - t0), 2)


def local_train_s(spec: dict) -> float:
    """What ``dljobs train`` does with a spec: validate it, then train it (no checkpoints kept),
    on as many BLAS threads as a worker (DLJOBS_BLAS_THREADS)."""
    with threadpool_limits(limits=Settings().blas_threads):
        started = time.perf_counter()
        train(validate(spec))
        return time.perf_counter() - started


def bookkeeping(settings: Settings, spec: dict, rounds: int) -> dict:
    local, service = [], []
    local_train_s(spec)  # warm: imports, the digits cache
    wait_finished(settings, submit(settings, spec)[0])
    for _ in range(rounds):
        local.append(local_train_s(spec))
        job = wait_finished(settings, submit(settings, spec)[0])
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error_message)
        service.append(_seconds(job.started_at, job.finished_at))
    return {
        "dljobs_train_s": round(statistics.median(local), 3),
        "service_s": round(statistics.median(service), 3),
        "ratio": round(statistics.median(service) / statistics.median(local), 3),
        "rounds": rounds,
    }


def run(rounds: int = 15, bookkeeping_rounds: int = 5, idle_s: float = 10.0, redis: bool = True) -> dict:
    """Every service figure, as the ``service`` entry of bench/results.json."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="dljobs-bench-") as tmp, ExitStack() as stack:
        settings, process = stack.enter_context(worker(Path(tmp) / "embedded"))
        out["idle_worker_cpu_percent"] = idle_cpu_percent(process, idle_s)
        out["embedded"] = dispatch(settings, rounds)
        out["bookkeeping"] = {
            "digits_mlp": bookkeeping(settings, digits_mlp(), bookkeeping_rounds),
            "mlp_20_epochs": bookkeeping(settings, mlp_20_epochs(), bookkeeping_rounds),
        }
        stack.close()
        if redis and testsupport.redis_available():
            with testsupport.fresh_redis_url() as url, worker(Path(tmp) / "redis", broker_url=url) as (rs, _):
                out["redis"] = dispatch(rs, rounds)
        else:
            out["redis"] = None  # no Redis on 127.0.0.1:6379
    return out


def table(service: dict) -> str:
    lines = ["service", f"  idle worker CPU                 {service['idle_worker_cpu_percent']:.2f} % of a core"]
    for broker in ("embedded", "redis"):
        d = service.get(broker)
        if d:
            lines.append(f"  {broker:<9} submit -> running p50 {d['submit_to_running_p50_ms']:7.1f} ms"
                         f"   one-iteration job p50 {d['one_iteration_job_p50_ms']:7.1f} ms")
    for name, b in service["bookkeeping"].items():
        lines.append(f"  bookkeeping {name:<15} dljobs train {b['dljobs_train_s']:.3f} s"
                     f"   service {b['service_s']:.3f} s   ratio {b['ratio']:.2f}")
    return "\n".join(lines)


def write_results(service: dict | None, path: Path = RESULTS) -> None:
    """Merge ``service`` into bench/results.json (the networks' part stays as it is)."""
    results_file.merge(("service",), service, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="jobs per dispatch measurement")
    parser.add_argument("--bookkeeping-rounds", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args(argv)
    service = run(args.rounds, args.bookkeeping_rounds, args.idle_s, redis=not args.no_redis)
    print(table(service))
    write_results(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
