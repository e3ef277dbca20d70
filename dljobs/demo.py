"""``make demo``: the whole service on this machine, one job over HTTP, then a clean stop.

Starts ``dljobs up`` (SQLite, filesystem broker, gunicorn, one Celery worker) on a free
port with a fresh temporary data directory, submits ``examples/digits_cnn.json``, draws
the live progress bar of ``dljobs follow`` from the job's events, prints the final
validation accuracy, downloads the trained model to ``./demo-model.npz`` (the service and
its URLs are gone a moment later) and shuts everything down.

    python -m dljobs.demo [--spec FILE] [--workers N] [--out FILE] [--timeout S] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from dljobs.client import ApiError
from dljobs.commands.follow import follow_job, took
from dljobs.commands.remote import JobEnded
from dljobs.embedded import EmbeddedService

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "examples" / "digits_cnn.json"
#: Where the trained model is saved, relative to the current directory.
DEFAULT_OUT = Path("demo-model.npz")


class DemoTimeout(Exception):
    """--timeout passed.  Not a TimeoutError: that is an OSError, which the HTTP stack
    under the event stream takes for a dropped connection and reconnects."""


def _give_up(_signum, _frame):
    raise DemoTimeout("the job did not finish within --timeout")


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
        print(f"service up at {service.base_url}; submitting {args.spec.name}", file=sys.stderr)
        client = service.client()  # with the admin token `dljobs up` wrote to its data directory
        try:
            job = client.submit(spec)
        except ApiError as exc:
            print(f"the job was rejected: {exc}", file=sys.stderr)
            return 1
        # The main thread waits on the event stream: an alarm is the one clock that interrupts it.
        signal.signal(signal.SIGALRM, _give_up)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            job = follow_job(client, job["id"])
        except JobEnded as ended:
            print(f"{ended}", file=sys.stderr)
            return 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        print(f"job {job['id']} succeeded{took(job)}")
        print(f"final validation accuracy: {job['metrics']['val_accuracy']:.4f}")
        client.download_model(job["id"], out)
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
