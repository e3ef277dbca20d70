"""``dljobs follow``: a job's events drawn as a live progress bar, diagnostics as they happen.

The ETA is this client's own measure: iterations per second of wall time over the last
``WINDOW_S`` seconds of progress events.  The server's ``eta_s`` divides the time since
the worker started (data loading, model build and the first slow steps included) by the
steps done, so early in a short job it says minutes for a job that has seconds left.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field

import click

from dljobs.commands.remote import INTERRUPTED, JobEnded
from dljobs.lifecycle import FINISHED, MODEL_STATUSES, has_model

#: Progress events closer together than this came in one burst (a replay of what was
#: written before we connected, or one poll of the server): they say nothing of speed.
BURST_S = 0.05
#: How much recent wall time the step rate is measured over (it follows a speed change
#: within this long, and evens out the pauses of evaluation at each epoch's end).
WINDOW_S = 15.0
#: The shortest span of wall time a rate is given from.
MIN_SPAN_S = 0.5


@dataclass
class StepClock:
    """The measured step rate of a job, from ``(arrival time, iteration)`` observations.

    Inputs to ``observe``: the iteration a progress event reports, and when it arrived
    (``time.monotonic()`` seconds).  A burst (several events within ``BURST_S``) counts as
    one observation at its last iteration; a rewind (a resumed attempt) starts afresh.
    """

    window_s: float = WINDOW_S
    samples: deque = field(default_factory=deque)

    def observe(self, iteration: int, at: float) -> None:
        if self.samples and iteration < self.samples[-1][1]:
            self.samples.clear()  # a resumed attempt went back to its checkpoint
        if self.samples and at - self.samples[-1][0] < BURST_S:
            self.samples[-1] = (self.samples[-1][0], iteration)
        else:
            self.samples.append((at, iteration))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def reset(self) -> None:
        self.samples.clear()

    @property
    def rate(self) -> float | None:
        """Iterations per second over the window; None until it spans ``MIN_SPAN_S``."""
        if len(self.samples) < 2:
            return None
        (t0, i0), (t1, i1) = self.samples[0], self.samples[-1]
        if t1 - t0 < MIN_SPAN_S or i1 <= i0:
            return None
        return (i1 - i0) / (t1 - t0)

    def eta_s(self, iterations: int | None, now: float | None = None) -> float | None:
        """Seconds left to reach ``iterations``, counted from the last observation."""
        rate = self.rate
        if rate is None or not iterations:
            return None
        at, iteration = self.samples[-1]
        elapsed = (time.monotonic() if now is None else now) - at
        return max(0.0, (iterations - iteration) / rate - elapsed)


def duration(seconds: float | None) -> str:
    """``7s``, ``2m05s``, ``1h03m``."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _number(value, digits: int = 4) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def diagnostic_line(data: dict) -> str:
    """``warning initial_loss at iteration 1 (epoch 0.0): ...``."""
    where = []
    if data.get("iteration") is not None:
        where.append(f"iteration {data['iteration']}")
    if data.get("epoch") is not None:
        where.append(f"epoch {float(data['epoch']):.1f}")
    at = f" at {', '.join(where)}" if where else ""
    return f"{data.get('severity', 'note')} {data.get('code', '')}{at}: {data.get('message', '')}"


class ProgressView:
    """The bar on ``out`` (stderr) and the lines written above it."""

    def __init__(self, job_id: str, out=None):
        self.job_id = job_id
        self.out = out or sys.stderr
        self.clock = StepClock()
        self.bar = None
        self.status: str | None = None
        self.progress: dict = {}
        self.loss = None
        self.accuracy: tuple[str, float] | None = None

    def note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            click.echo(line, file=self.out)

    def on_event(self, event: dict, now: float | None = None) -> None:
        kind, data = event.get("event"), event.get("data")
        if not isinstance(data, dict):
            return
        now = time.monotonic() if now is None else now
        if kind == "status":
            self._on_status(data)
        elif kind == "progress":
            self.progress = data
            if data.get("iteration") is not None:
                self.clock.observe(int(data["iteration"]), now)
            self._draw(now)
        elif kind == "metrics":
            values = data.get("values") or {}
            if values.get("loss") is not None:
                self.loss = values["loss"]
            for key, label in (("val_accuracy", "val acc"), ("train_accuracy", "train acc")):
                if values.get(key) is not None:
                    self.accuracy = (label, values[key])
                    break
        elif kind == "diagnostic":
            self.note(diagnostic_line(data))
        elif kind == "rewind":
            self.clock.reset()
            self.note(f"attempt {data.get('attempt')} resumes from iteration {data.get('iteration')}")

    def _on_status(self, data: dict) -> None:
        status = data.get("status")
        if status == self.status:
            return
        self.status = status
        worker = data.get("worker") or {}
        where = f" on {worker.get('host')} (pid {worker.get('pid')})" if worker.get("host") else ""
        attempt = data.get("attempt") or 1
        again = f", attempt {attempt}" if attempt > 1 else ""
        self.note(f"job {self.job_id} {status}{where}{again}")

    def _draw(self, now: float) -> None:
        # deferred: tqdm loads only when a bar is drawn
        from tqdm import tqdm

        p = self.progress
        iterations = p.get("iterations")
        if self.bar is None:
            if not iterations:
                return
            self.bar = tqdm(total=int(iterations), file=self.out, unit="it", dynamic_ncols=True,
                            mininterval=0.1 if self.out.isatty() else 1.0,
                            bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {postfix}")
        elif int(iterations) != self.bar.total:
            self.bar.total = int(iterations)
        self.bar.n = int(p.get("iteration") or 0)
        self.bar.set_postfix_str(self.postfix(now), refresh=False)
        self.bar.refresh()

    def postfix(self, now: float | None = None) -> str:
        """``epoch 3.2/12  loss 0.2130  val acc 0.9520  eta 7s (41 ms/step)``."""
        p = self.progress
        parts = []
        if p.get("epoch") is not None:
            parts.append(f"epoch {float(p['epoch']):.1f}/{p.get('epochs')}")
        if self.loss is not None:
            parts.append(f"loss {_number(self.loss)}")
        if self.accuracy is not None:
            parts.append(f"{self.accuracy[0]} {_number(self.accuracy[1])}")
        rate = self.clock.rate
        if rate:
            done = p.get("iteration") is not None and p.get("iteration") >= (p.get("iterations") or 0)
            eta = 0.0 if done else self.clock.eta_s(p.get("iterations"), now)
            pace = f"{1000 / rate:.0f} ms/step" if rate < 100 else f"{rate:.0f} steps/s"
            parts.append(f"eta {duration(eta)} ({pace})")
        return "  ".join(parts)

    def finish(self, job: dict) -> None:
        if self.bar is not None:
            if job["status"] in MODEL_STATUSES and self.bar.total:
                self.bar.n = self.bar.total
            self.bar.set_postfix_str(self.postfix(), refresh=False)
            self.bar.close()
            self.bar = None


def took(job: dict) -> str:
    # deferred: datetime parsing only for the final line
    from datetime import datetime

    if not (job.get("started_at") and job.get("finished_at")):
        return ""
    seconds = (datetime.fromisoformat(job["finished_at"])
               - datetime.fromisoformat(job["started_at"])).total_seconds()
    return f" in {duration(seconds)}"


def summary_lines(client, job: dict) -> list[str]:
    """The final lines: outcome, metrics, where the model is."""
    lines = [f"job {job['id']} {job['status']}{took(job)}"]
    if job.get("stop_reason"):
        lines[0] += f" ({job['stop_reason']}, epoch {job.get('stopped_epoch')})"
    metrics = job.get("metrics") or {}
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        if metrics.get(key) is not None:
            lines.append(f"  {key:<15} {_number(metrics[key])}")
    if has_model(job["status"], job.get("stop_reason"), job.get("stopped_epoch")):
        lines.append(f"model: {client.api_url}/jobs/{job['id']}/model  (dljobs download {job['id']})")
    return lines


def follow_job(client, job_id: str, out=None) -> dict:
    """Draw the job's events until it finishes; the finished job's answer.

    Raises: :class:`JobEnded` when it failed or was cancelled.  A ``KeyboardInterrupt``
    (or any error) closes the bar and passes on: the caller says what it means.
    """
    view = ProgressView(job_id, out)
    try:
        for event in client.events(job_id):
            view.on_event(event)
        job = client.get(job_id)
        while job["status"] not in FINISHED:  # the stream ended early: ask until it is over
            time.sleep(0.5)
            job = client.get(job_id)
    except BaseException:
        view.finish({"status": ""})
        raise
    view.finish(job)
    if job["status"] not in MODEL_STATUSES:
        raise JobEnded(job)
    return job


def follow_or_leave(client, job_id: str) -> dict:
    """:func:`follow_job`, where Ctrl-C stops following (exit 130) and leaves the job running."""
    try:
        return follow_job(client, job_id)
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; job {job_id} keeps running "
                   f"(dljobs follow {job_id} to watch it again, dljobs cancel {job_id} to stop it)",
                   err=True)
        raise click.exceptions.Exit(INTERRUPTED) from None
