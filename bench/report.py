"""bench/results.json as the markdown of docs/performance.md's "latest table".

``python -m bench.report [PATH]`` prints the run's machine, the networks table, the
scaling table, the pool check, the service figures and the targets, from the file
(default bench/results.json) and nothing else: the page shows what a run measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import targets
from bench.__main__ import RESULTS, network_table, scaling_table


def service_table(service: dict) -> str:
    rows = ["| figure | value |", "| --- | --- |"]
    for broker in ("embedded", "redis"):
        d = service.get(broker) or {}
        if d:
            rows.append(f"| submit -> running p50, {broker} | {d.get('submit_to_running_p50_ms')} ms |")
            rows.append(f"| one-iteration job p50, {broker} | {d.get('one_iteration_job_p50_ms')} ms |")
    if "idle_worker_cpu_percent" in service:
        rows.append(f"| idle worker CPU | {service['idle_worker_cpu_percent']} % of a core |")
    for name, b in (service.get("bookkeeping") or {}).items():
        rows.append(f"| {name}: service {b['service_s']} s / dljobs train {b['dljobs_train_s']} s | {b['ratio']} |")
    t = service.get("throughput") or {}
    for n in ("1", "2"):
        if isinstance(t.get(n), dict):
            rows.append(f"| {t[n]['jobs']} digits MLPs, {n} worker(s) ({t.get('backend')}) | "
                        f"{t[n]['jobs_per_minute']} jobs/min |")  # fmt: skip
    load = service.get("submit_load") or {}
    if load.get("submits_per_s") is not None:
        rows.append(f"| {load['clients']} concurrent submitters, {load['jobs']} jobs, `-w {load['api_processes']}` | "
                    f"{load['submits_per_s']}/s, p50 {load['submit_p50_ms']} ms, p99 {load['submit_p99_ms']} ms, "
                    f"{load['errors']} errors, {load['lost']} lost |")  # fmt: skip
    for key, value in service.items():
        if key.endswith("_error") or (isinstance(value, dict) and "error" in value):
            rows.append(f"| {key} | {value if key.endswith('_error') else value['error']} |")
    return "\n".join(rows)


def render(results: dict) -> str:
    m, v = results.get("machine", {}), results.get("versions", {})
    blas = ", ".join(f"{b['internal_api']} {b.get('version') or ''} ({b.get('architecture') or b.get('prefix')})"
                     for b in results.get("blas", []))  # fmt: skip
    counts = sorted({int(n) for net in results.get("networks", {}).values() for n in net["threads"]})
    parts = [
        (f"Run on `{m.get('cpu')}` ({m.get('cores')} cores), Python {v.get('python')}, NumPy {v.get('numpy')}, "
        f"PyTorch {v.get('torch')}; BLAS: {blas}; sgemm peak {results.get('sgemm_gflops')} GFLOP/s; "
        f"wall times {results.get('wall_s')} s; load average at the start {m.get('load_average_at_start')}, "
        f"at the end {m.get('load_average_at_end')}."),
        network_table(results.get("networks", {}), counts),
        scaling_table(results.get("networks", {}), counts),
    ]
    if "pool_check" in results:
        parts.append(f"Pool check: `{json.dumps(results['pool_check'])}`")
    if results.get("service"):
        parts.append(service_table(results["service"]))
    parts.append(targets.table(results.get("targets") or targets.check(results)))
    return "\n\n".join(p for p in parts if p)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else RESULTS
    print(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
