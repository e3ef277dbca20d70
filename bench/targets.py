"""The targets of issue 12, checked against one run's bench/results.json.

Each target is a figure read from the results, a must-meet limit and (for the ratios
against PyTorch) a stretch limit.  ``check(results)`` gives one row per target:
``{"target", "value", "must", "stretch", "status", "by"}``, where status is ``met``,
``stretch`` (the stretch limit is met too), ``MISSED`` or ``not measured``, and ``by`` says
how far the value is from the must-meet limit, in percent of the limit (positive: missed
by that much; negative: met with that much room).  ``python -m bench`` prints them and
stores them under ``targets``; a missed must-meet target keeps the issue open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ALL = "all"  # the machine's core count, whatever it is

# dlcore median / torch median: (must, stretch) at 1 thread and at all cores
RATIOS = {
    "mlp": {"1": (0.70, 0.6), ALL: (0.75, 0.6)},
    "mlp_b8": {"1": (0.40, 0.3), ALL: (0.45, 0.3)},
    "cnn": {"1": (0.85, 0.7), ALL: (1.10, 0.9)},
    "cnn_bn_drop": {"1": (1.00, 0.8), ALL: (1.25, 1.0)},
    "resnet_tiny": {"1": (1.50, 1.0), ALL: (2.00, 1.2)},
}
SCALING = ("cnn", "cnn_bn_drop", "resnet_tiny")  # dlcore all cores / 1 thread <= 0.65
SCALING_LIMIT = 0.65
MEMORY_LIMIT = 1.5  # dlcore peak / torch peak
WALL_LIMITS_S = {"networks": 360, "service": 240, "total": 600}


@dataclass(frozen=True)
class Target:
    name: str
    read: Callable[[dict], float | None]  # the figure, or None when it was not measured
    must: float
    stretch: float | None = None
    at_most: bool = True  # False: the figure must be at least the limit


def _get(results: dict, *path):
    node = results
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _all_cores(results: dict) -> str:
    return str((results.get("machine") or {}).get("cores", 2))


def _ratio(name: str, threads: str) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        n = _all_cores(results) if threads == ALL else threads
        return _get(results, "networks", name, "threads", n, "ratio")

    return read


def _scaling(name: str) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        one = _get(results, "networks", name, "threads", "1", "dlcore_ms")
        many = _get(results, "networks", name, "threads", _all_cores(results), "dlcore_ms")
        return many / one if one and many else None

    return read


def _memory(name: str, threads: str) -> Callable[[dict], float | None]:
    def read(results: dict) -> float | None:
        n = _all_cores(results) if threads == ALL else threads
        ours = _get(results, "networks", name, "threads", n, "dlcore_peak_mb")
        theirs = _get(results, "networks", name, "threads", n, "torch_peak_mb")
        return ours / theirs if ours is not None and theirs else None

    return read


def _workers_speedup(results: dict) -> float | None:
    one = _get(results, "service", "throughput", "1", "jobs_per_minute")
    two = _get(results, "service", "throughput", "2", "jobs_per_minute")
    return two / one if one and two else None


def _path(*path) -> Callable[[dict], float | None]:
    return lambda results: _get(results, *path)


def targets() -> list[Target]:
    out = []
    for name, limits in RATIOS.items():
        for threads, (must, stretch) in limits.items():
            label = "1 thread" if threads == "1" else "all cores"
            out.append(Target(f"{name} dlcore/torch, {label}", _ratio(name, threads), must, stretch))
    for name in SCALING:
        out.append(Target(f"{name} dlcore all cores / 1 thread", _scaling(name), SCALING_LIMIT))
    for name in RATIOS:
        for threads in ("1", ALL):
            label = "1 thread" if threads == "1" else "all cores"
            out.append(Target(f"{name} peak memory dlcore/torch, {label}", _memory(name, threads), MEMORY_LIMIT))
    out += [
        Target("2 workers / 1 worker, jobs per minute", _workers_speedup, 1.8, at_most=False),
        Target("digits MLP through the service / dljobs train",
               _path("service", "bookkeeping", "digits_mlp", "ratio"), 1.15),
        Target("20-epoch MLP through the service / dljobs train",
               _path("service", "bookkeeping", "mlp_20_epochs", "ratio"), 1.15),
        Target("dispatch p50 on Redis, ms", _path("service", "redis", "submit_to_running_p50_ms"), 20),
        Target("dispatch p50 on the embedded broker, ms",
               _path("service", "embedded", "submit_to_running_p50_ms"), 50),
        Target("one-iteration job end to end (Redis), ms",
               _path("service", "redis", "one_iteration_job_p50_ms"), 150),
        Target("one-iteration job end to end (embedded), ms",
               _path("service", "embedded", "one_iteration_job_p50_ms"), 150),
        Target("50 concurrent submitters, submissions/s",
               _path("service", "submit_load", "submits_per_s"), 200, at_most=False),
        Target("50 concurrent submitters, p99 ms", _path("service", "submit_load", "submit_p99_ms"), 500),
        # issue 10: the job list at scale, and other requests beside a hundred event streams
        Target("job list at 100,000 jobs (PostgreSQL), p95 ms",
               _path("service", "joblist", "joblist_100k_p95_ms"), 150),
        Target("job list filtered by status at 100,000 jobs, p95 ms",
               _path("service", "joblist", "joblist_100k_status_p95_ms"), 150),
        Target("/healthz beside 100 event streams, p99 ms", _path("service", "streams", "healthz_p99_ms"), 200),
        Target("job list beside 100 event streams, p99 ms", _path("service", "streams", "joblist_p99_ms"), 200),
    ]  # fmt: skip
    for part, limit in WALL_LIMITS_S.items():
        out.append(Target(f"wall time of the {part} part, s", _path("wall_s", part), limit))
    return out


def _status(target: Target, value: float) -> tuple[str, float]:
    if target.at_most:
        met, by = value <= target.must, 100.0 * (value / target.must - 1)
        stretched = target.stretch is not None and value <= target.stretch
    else:
        met, by = value >= target.must, 100.0 * (1 - value / target.must)
        stretched = target.stretch is not None and value >= target.stretch
    return ("stretch" if stretched else "met") if met else "MISSED", round(by, 1)


def check(results: dict) -> list[dict]:
    rows = []
    for target in targets():
        value = target.read(results)
        row = {"target": target.name, "value": None if value is None else round(float(value), 3),
               "must": target.must, "stretch": target.stretch,
               "at_most": target.at_most, "status": "not measured", "by": None}  # fmt: skip
        if value is not None:
            row["status"], row["by"] = _status(target, float(value))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| target | value | must meet | stretch | status | by |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        sign = "<=" if r["at_most"] else ">="
        stretch = f"{sign} {r['stretch']}" if r["stretch"] is not None else ""
        by = "" if r["by"] is None else (f"missed by {r['by']:+.1f}%" if r["status"] == "MISSED" else f"room {-r['by']:.1f}%")
        value = "" if r["value"] is None else f"{r['value']:g}"
        lines.append(f"| {r['target']} | {value} | {sign} {r['must']} | {stretch} | {r['status']} | {by} |")
    missed = sum(r["status"] == "MISSED" for r in rows)
    unmeasured = sum(r["status"] == "not measured" for r in rows)
    lines.append(f"\n{missed} must-meet target(s) missed, {unmeasured} not measured in this run.")
    return "\n".join(lines)
