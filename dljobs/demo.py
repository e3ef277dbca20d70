"""``make demo``: the whole service on this machine, one job over HTTP, then a clean stop.

Starts ``dljobs up`` (SQLite, filesystem broker, gunicorn, one Celery worker) on a free
port with a fresh temporary data directory, submits ``examples/digits_cnn.json``, shows
a live progress bar from ``GET /api/v1/jobs/<id>``, prints the final validation accuracy,
downloads the trained model to ``./demo-model.npz`` (the service and its URLs are gone a
moment later) and shuts everything down.

    python -m dljobs.demo [--spec FILE] [--workers N] [--out FILE] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests
from tqdm import tqdm

from dljobs.embedded import EmbeddedService
from dljobs.lifecycle import FINISHED, JobStatus

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "examples" / "digits_cnn.json"
#: Where the trained model is saved, relative to the current directory.
DEFAULT_OUT = Path("demo-model.npz")


def follow(base_url: str, job_id: str, timeout_s: float, out=sys.stderr,
           headers: dict | None = None) -> dict:
    """Poll the job, drawing a progress bar, until it ends; the final job document."""
    url = f"{base_url}/api/v1/jobs/{job_id}"
    deadline = time.monotonic() + timeout_s
    with tqdm(total=100.0, unit="%", file=out, bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}]{postfix}") as bar:
        while True:
            job = requests.get(url, timeout=30, headers=headers).json()
            progress = job.get("progress") or {}
            bar.n = float(progress.get("percent") or 0.0)
            metrics = job.get("metrics") or {}
            postfix = {"status": job["status"]}
            if progress.get("epoch") is not None:
                postfix["epoch"] = f"{progress['epoch']:.1f}/{progress.get('epochs')}"
            if metrics.get("val_accuracy") is not None:
                postfix["val_acc"] = f"{metrics['val_accuracy']:.3f}"
            bar.set_postfix(postfix, refresh=False)
            bar.refresh()
            if job["status"] in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout_s:.0f} s")
            time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dljobs.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="job spec to submit")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the job")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"save the trained model here (default ./{DEFAULT_OUT})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args(argv)
    out = args.out.expanduser().resolve()
    if out.is_dir() or not out.parent.is_dir():
        parser.error(f"--out: cannot write {args.out}: "
                     f"{'is a directory' if out.is_dir() else 'its folder does not exist'}")

    spec = json.loads(args.spec.read_text())
    data_dir = Path(tempfile.mkdtemp(prefix="dljobs-demo-"))
    service = EmbeddedService(data_dir, workers=args.workers)
    print(f"starting dljobs (data in {data_dir}) ...", file=sys.stderr)
    code = 1
    try:
        service.start()
        base = service.base_url
        print(f"service up at {base}; submitting {args.spec.name}", file=sys.stderr)
        auth = service.headers()  # the admin token `dljobs up` wrote to its data directory
        response = requests.post(f"{base}/api/v1/jobs", json=spec, timeout=30, headers=auth)
        if response.status_code != 201:
            print(f"the job was rejected ({response.status_code}): {response.text}", file=sys.stderr)
            return 1
        job = follow(base, response.json()["id"], args.timeout, headers=auth)
        seconds = None
        if job.get("started_at") and job.get("finished_at"):

            seconds = (
                datetime.fromisoformat(job["finished_at"])
                - datetime.fromisoformat(job["started_at"])
            ).total_seconds()
        if job["status"] != JobStatus.SUCCEEDED:
            print(f"job {job['id']} ended {job['status']}: {job.get('error')}", file=sys.stderr)
            return 1
        accuracy = job["metrics"]["val_accuracy"]
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        print(f"job {job['id']} succeeded{took}")
        print(f"final validation accuracy: {accuracy:.4f}")
        model = requests.get(f"{base}/api/v1/jobs/{job['id']}/model", timeout=60, headers=auth)
        model.raise_for_status()
        out.write_bytes(model.content)
        print(f"model saved to {out} (dlcore.loading.load_model(path).predict(x) with x of "
              f"shape (N, {', '.join(map(str, job['summary']['input_shape']))}))")
        code = 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except Exception as exc:  # noqa: BLE001 - the demo reports and still shuts down
        print(f"demo failed: {exc}", file=sys.stderr)
        tail = service.log()[-4000:]
        if tail:
            print(f"--- service log (tail) ---\n{tail}", file=sys.stderr)
    finally:
        print("shutting down ...", file=sys.stderr)
        stopped = service.stop()
        if stopped != 0 and code == 0:
            print(f"dljobs up exited with {stopped}", file=sys.stderr)
            code = 1
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        print("stopped", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
