"""The parts of `make bench` after the networks, each in a subprocess with a time budget.

A section is a module with ``run() -> dict``; its figure lands at ``where`` in
bench/results.json.  Modules other helpers contribute (``bench.joblist``,
``bench.sweeps``) are run when they are importable (``importlib.util.find_spec``) and
skipped otherwise.  A section that overruns its budget is interrupted (SIGINT, so its
``finally`` blocks stop the workers and servers it started), then killed; its entry
then says so instead of holding figures.

``python -m bench.sections MODULE OUT.json [KWARGS_JSON]`` is how one section runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Section:
    name: str  # what --only and --no-<name> call it
    module: str
    where: tuple[str, ...]  # its place in bench/results.json
    budget_s: float
    group: str  # the flag that skips it with others: --no-service, --no-sweeps
    merge: bool = False  # its keys go into the entry at ``where`` instead of replacing it
    quick_kwargs: dict = field(default_factory=dict, hash=False)  # for --quick
    kwargs: dict = field(default_factory=dict, hash=False)  # for a full run


SECTIONS = (
    Section("dispatch", "bench.service", ("service",), 120, "service", True,
            {"rounds": 3, "bookkeeping_rounds": 1, "idle_s": 1.0}),
    Section("throughput", "bench.throughput", ("service", "throughput"), 90, "service",
            quick_kwargs={"jobs": 4}),
    Section("submit_load", "bench.submit_load", ("service", "submit_load"), 90, "service",
            quick_kwargs={"jobs": 100, "clients": 10}, kwargs={"jobs": 1000}),
    Section("joblist", "bench.joblist", ("service", "joblist"), 90, "service"),
    Section("streams", "bench.streams", ("service", "streams"), 60, "service"),
    Section("sweeps", "bench.sweeps", ("sweeps",), 120, "sweeps"),
)  # fmt: skip


def available(section: Section) -> bool:
    return importlib.util.find_spec(section.module) is not None


def place(results: dict, section: Section, value) -> None:
    """Put ``value`` at the section's place in ``results`` (merged into it for ``merge``:
    bench.service's ``embedded``, ``redis``, ``bookkeeping``... are keys of ``service``)."""
    node = results
    for key in section.where[:-1]:
        node = node.setdefault(key, {})
    last = section.where[-1]
    if section.merge and isinstance(value, dict) and "error" not in value:
        node.setdefault(last, {}).update(value)
    elif section.merge:
        node.setdefault(last, {})[f"{section.name}_error"] = (value or {}).get("error")
    else:
        node[last] = value


def run(section: Section, quick: bool = False) -> tuple[dict | None, float]:
    """(the section's figures, or {"error": ...}; seconds it took) from a subprocess."""
    kwargs = section.quick_kwargs if quick else section.kwargs
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dljobs-bench-section-") as tmp:
        out = Path(tmp) / "out.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.sections", section.module, str(out), json.dumps(kwargs)],
            cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout=section.budget_s)
        except KeyboardInterrupt:  # its own session does not see our Ctrl-C: pass it on
            _interrupt(process)
            raise
        except subprocess.TimeoutExpired:
            _interrupt(process)
            return {"error": f"over its budget of {section.budget_s:g} s: interrupted"}, time.monotonic() - started
        elapsed = time.monotonic() - started
        if process.returncode != 0 or not out.exists():
            return {"error": f"{section.module} exited with {process.returncode} (its output is above)"}, elapsed
        return json.loads(out.read_text()), elapsed


def _interrupt(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv: list[str]) -> int:
    module, out = argv[0], Path(argv[1])
    kwargs = json.loads(argv[2]) if len(argv) > 2 else {}
    figures = importlib.import_module(module).run(**kwargs)
    out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
