"""`make bench`: dlcore against PyTorch on the CPU in the same run, then the service figures.

The networks (bench/networks.py: the five reference networks of issue 12 and every
registered architecture) are timed against their PyTorch twins, interleaved round by
round, at 1 thread and at all the machine's cores (bench/timing.py), with the peak
memory of a step of each side measured in processes of their own (bench/memory.py)
and the sgemm peak measured at the start.  Then the service sections run, each in a
subprocess with a time budget (bench/sections.py).  The table goes to stdout, every
figure to bench/results.json (schema in docs/performance.md), and the targets of the
issue are checked against them (bench/targets.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import networks, sections, targets, timing
from bench.results_file import RESULTS


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    return {"cpu": model, "cores": timing.cores(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def versions(torch_too: bool) -> dict:
    import numpy as np
    import threadpoolctl

    import dlcore

    out = {"python": platform.python_version(), "numpy": np.__version__,
           "dlcore": getattr(dlcore, "__version__", None), "threadpoolctl": threadpoolctl.__version__}  # fmt: skip
    if torch_too:
        import torch

        out["torch"] = torch.__version__
    return out


def blas() -> list[dict]:
    from threadpoolctl import threadpool_info

    return [{k: info.get(k) for k in ("user_api", "internal_api", "prefix", "version", "threading_layer",
                                      "architecture", "num_threads")} for info in threadpool_info()]  # fmt: skip


def thread_counts(args) -> list[int]:
    return sorted({1, timing.cores()}) if args.threads is None else sorted(set(args.threads))


def measure_networks(chosen: list[networks.Network], counts: list[int], sgemm: dict, args) -> dict:
    """{name: {"title", "gflop_per_step", "twin", "threads": {n: figures}}}, timed in this process."""
    out: dict = {}
    built = {}
    for network in chosen:
        try:
            setup = networks.setup_dlcore(network)
            module, reason = networks.torch_module(network, setup.net, setup.x) if not args.no_torch else (None, "--no-torch")
        except Exception as exc:
            if network.reference:
                raise
            # a third party's architecture that does not build must not cost the whole run
            out[network.name] = {"title": network.title, "error": f"{type(exc).__name__}: {exc}", "threads": {}}
            print(f"  {network.name}: not timed: {out[network.name]['error']}", file=sys.stderr, flush=True)
            continue
        built[network.name] = (setup, module)
        out[network.name] = {
            "title": network.title, "batch": network.batch, "sample_shape": list(network.sample_shape),
            "gflops": round(networks.gflop_per_step(setup.net, network.batch), 4),
            "twin": reason or "pytorch", "threads": {},
        }  # fmt: skip
    for n in counts:
        with timing.threads(n, torch_too=not args.no_torch):
            for network in chosen:
                if network.name not in built:
                    continue
                setup, module = built[network.name]
                steps = {"dlcore": setup.step,
                         "torch": networks.torch_step(module, setup.x, setup.y) if module is not None else None}
                timed = timing.interleaved(steps, args.rounds, args.round_s)
                out[network.name]["threads"][str(n)] = _figures(out[network.name]["gflops"], timed, sgemm.get(str(n)))
                print(f"  timed {network.name:<16} {n} thread(s)", file=sys.stderr, flush=True)
    return out


def _figures(gflop: float, timed: dict, peak: float | None) -> dict:
    ours, theirs = timed["dlcore"], timed.get("torch")
    rate = gflop / (ours["median_ms"] / 1e3)
    return {
        "dlcore_ms": round(ours["median_ms"], 3), "dlcore_ms_best": round(ours["best_ms"], 3),
        "torch_ms": round(theirs["median_ms"], 3) if theirs else None,
        "torch_ms_best": round(theirs["best_ms"], 3) if theirs else None,
        "ratio": round(ours["median_ms"] / theirs["median_ms"], 3) if theirs else None,
        "gflops": gflop, "pct_peak": round(100 * rate / peak, 1) if peak else None,
        "torch_pct_peak": round(100 * gflop / (theirs["median_ms"] / 1e3) / peak, 1) if theirs and peak else None,
        "dlcore_peak_mb": None, "torch_peak_mb": None,
        "rounds_ms": {"dlcore": ours["rounds_ms"], "torch": theirs["rounds_ms"] if theirs else None},
    }  # fmt: skip


def measure_memory(results: dict, counts: list[int], torch_too: bool) -> None:
    from bench import memory

    cases = [(name, n) for name in results if "error" not in results[name] for n in counts]
    for side in ("dlcore", "torch") if torch_too else ("dlcore",):
        mine = [(name, n) for name, n in cases if side == "dlcore" or results[name]["twin"] == "pytorch"]
        try:
            peaks = memory.peaks(side, mine, timeout_s=60 + 30 * len(mine))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            # no /proc (not Linux), or a child that failed: the timings still stand
            print(f"  peak memory of {side}: not measured: {exc}", file=sys.stderr, flush=True)
            continue
        for key, mb in peaks.items():
            name, n = key.rsplit("|", 1)
            results[name]["threads"][n][f"{side}_peak_mb"] = mb


def pool_check(network_name: str, n: int, args) -> dict:
    """Each side alone in a process of its own (the other library not even imported) against
    both interleaved in this process, timed back to back (alone dlcore, interleaved, alone
    torch) so that other work on the machine drifts as little as possible between them:
    whether the two libraries' thread pools slow each other."""
    from bench import alone

    (network,) = networks.select([network_name])
    setup = networks.setup_dlcore(network)
    module, _ = networks.torch_module(network, setup.net, setup.x)
    out: dict = {"network": network_name, "threads": n}
    out["dlcore_alone_ms"] = alone.median_ms("dlcore", network_name, n, args.rounds, args.round_s)
    with timing.threads(n):
        timed = timing.interleaved({"dlcore": setup.step, "torch": networks.torch_step(module, setup.x, setup.y)},
                                   args.rounds, args.round_s)  # fmt: skip
    out["torch_alone_ms"] = alone.median_ms("torch", network_name, n, args.rounds, args.round_s)
    for side in ("dlcore", "torch"):
        together = round(timed[side]["median_ms"], 3)
        out[f"{side}_interleaved_ms"] = together
        out[f"{side}_interleaved_over_alone"] = round(together / out[f"{side}_alone_ms"], 3)
    return out


def network_table(results: dict, counts: list[int]) -> str:
    lines = ["| network | threads | dlcore ms (best) | torch ms (best) | ratio | GFLOP/step | % of sgemm peak dlcore / torch | peak MB dlcore / torch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip

    def num(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    for name, net in results.items():
        for n in counts:
            f = net["threads"].get(str(n))
            if not f:
                continue
            lines.append(
                f"| {name} | {n} | {num(f['dlcore_ms'])} ({num(f['dlcore_ms_best'])}) | "
                f"{num(f['torch_ms'])} ({num(f['torch_ms_best'])}) | {num(f['ratio'])} | {net['gflops']:.3f} | "
                f"{num(f['pct_peak'], '{:.0f}')} / {num(f['torch_pct_peak'], '{:.0f}')} | "
                f"{num(f['dlcore_peak_mb'], '{:.1f}')} / {num(f['torch_peak_mb'], '{:.1f}')} |"
            )
    return "\n".join(lines)


def scaling_table(results: dict, counts: list[int]) -> str:
    if len(counts) < 2:
        return ""
    lo, hi = str(counts[0]), str(counts[-1])
    lines = [f"| network | dlcore {hi} threads / {lo} | torch {hi} threads / {lo} |", "| --- | --- | --- |"]
    for name, net in results.items():
        a, b = net["threads"].get(lo), net["threads"].get(hi)
        if a and b:
            torch_scaling = f"{b['torch_ms'] / a['torch_ms']:.2f}" if a["torch_ms"] and b["torch_ms"] else "-"
            lines.append(f"| {name} | {b['dlcore_ms'] / a['dlcore_ms']:.2f} | {torch_scaling} |")
    return "\n".join(lines)


def write(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    names = [s.name for s in sections.SECTIONS]
    parser.add_argument("--only", action="append", choices=["networks", *names], metavar="PART",
                        help=f"run only this part (repeatable): networks, {', '.join(names)}")
    parser.add_argument("--network", action="append", metavar="NAME",
                        help="time only this network (repeatable; 'arch' for every architecture)")
    parser.add_argument("--no-service", action="store_true", help="skip every service section")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the sweeps section")
    for name in (n for n in names if n not in ("service", "sweeps")):
        parser.add_argument(f"--no-{name.replace('_', '-')}", action="store_true", dest=f"no_{name}",
                            help=f"skip the {name} section")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-pool-check", action="store_true", help="skip timing each side alone")
    parser.add_argument("--no-torch", action="store_true", help="time dlcore alone")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 1 with --quick)")
    parser.add_argument("--round-s", type=float, default=0.2, help="seconds of steps per side per round")
    parser.add_argument("--threads", type=int, action="append", help="thread counts (default: 1 and all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 round, the mlp only, short rounds, small service sections")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.json goes")
    return parser


def parse(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1 or args.round_s <= 0:
        parser.error("--rounds must be at least 1 and --round-s positive")
    if args.quick:
        args.round_s = min(args.round_s, 0.02)
        args.network = args.network or ["mlp"]
        args.no_pool_check = True
    return args


def wanted(args, part: str, group: str | None = None) -> bool:
    if args.only:
        return part in args.only
    if part == "networks":
        return True
    return not (getattr(args, f"no_{part}", False) or (group and getattr(args, f"no_{group}", False)))


def main(argv=None) -> int:
    args = parse(argv)
    started = time.monotonic()
    results: dict = {"machine": machine(), "versions": versions(not args.no_torch), "blas": blas()}
    try:  # the figures of a part not run this time stay as the last run left them
        previous = json.loads(args.out.read_text())
    except (OSError, ValueError):
        previous = {}
    results["wall_s"] = {}
    counts = thread_counts(args)
    if wanted(args, "networks"):
        t0 = time.monotonic()
        results["sgemm_gflops"] = {str(n): round(timing.sgemm_gflops(n), 1) for n in counts}
        chosen = networks.select(args.network)
        results["networks"] = measure_networks(chosen, counts, results["sgemm_gflops"], args)
        if not args.no_memory:
            measure_memory(results["networks"], counts, not args.no_torch)
        check_net = "cnn" if "cnn" in results["networks"] else chosen[0].name
        if not (args.no_pool_check or args.no_torch) and results["networks"][check_net].get("twin") == "pytorch":
            # at 1 thread there is no pool to fight: that ratio is the noise floor of the n-thread one
            results["pool_check"] = {"network": check_net,
                                     "threads": {str(n): pool_check(check_net, n, args) for n in counts}}  # fmt: skip
        results["wall_s"]["networks"] = round(time.monotonic() - t0, 1)
        print(f"sgemm peak GFLOP/s: {results['sgemm_gflops']}   {results['machine']['cpu']}, "
              f"{results['machine']['cores']} cores\n")
        print(network_table(results["networks"], counts))
        print()
        print(scaling_table(results["networks"], counts))
        if "pool_check" in results:
            print(f"\npool check ({check_net}): {json.dumps(results['pool_check']['threads'])}")
    else:
        for key in ("sgemm_gflops", "networks", "pool_check"):
            if key in previous:
                results[key] = previous[key]
    write(results, args.out)
    service_s = 0.0
    for section in sections.SECTIONS:
        if not wanted(args, section.name, section.group):
            continue
        if not sections.available(section):
            print(f"\n{section.name}: {section.module} is not here, skipped", flush=True)
            continue
        print(f"\n{section.name}: running {section.module} (budget {section.budget_s:g} s)", flush=True)
        figures, elapsed = sections.run(section, quick=args.quick)
        sections.place(results, section, figures)
        results["wall_s"][section.name] = round(elapsed, 1)
        if section.group == "service" and section.name not in ("joblist", "streams"):  # issue 10 figures, not the service budget
            service_s += elapsed
        print(json.dumps(figures, indent=1)[:3000])
        write(results, args.out)
    if service_s:
        results["wall_s"]["service"] = round(service_s, 1)
    for key in ("service", "sweeps"):
        if key not in results and key in previous:
            results[key] = previous[key]
    results["wall_s"]["total"] = round(time.monotonic() - started, 1)
    # other work on the machine shows here: a 2-core machine at load 4 halves any 2-thread figure
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets.check(results)
    write(results, args.out)
    print("\ntargets (issue 12)\n" + targets.table(results["targets"]))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
