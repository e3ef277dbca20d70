"""``dljobs plugins``: list every installed component, or run the conformance kit over them.

    dljobs plugins            # by kind: name, distribution, version, summary (or load error)
    dljobs plugins --json     # Registry.listing(), as GET /api/v1/plugins serves it
    dljobs plugins --check    # the kit over everything installed; exit 1 on any failure
"""

from __future__ import annotations

import json
import sys
import time

import click


def _rows_text(registry) -> str:
    """Aligned plain-text listing: one block per group, then the sweeps' search methods
    (``dljobs.search_methods``) listed the same way, then one summary line over both."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dlcore.registry import GROUPS
    from dljobs.search.registry import default_methods

    blocks: dict[str, list[tuple[str, str, str]]] = {}
    for group in GROUPS:
        rows = []
        for e in registry.entries(group):
            text = f"ERROR {e.error}" if e.error is not None else e.describe()["summary"]
            claims = len(registry.claims(group, e.name))
            if claims > 1:
                text = f"[name claimed by {claims} distributions: use '{e.qualified_name}'] {text}"
            rows.append((e.name, e.origin(), text))
        blocks[group] = rows
    methods = default_methods().listing()
    blocks["search_methods"] = [
        (row["name"], f"{row['distribution']} {row['version']}" if row["distribution"] else "?",
         f"ERROR {row['error']}" if row["error"] else row["summary"]) for row in methods]
    everything = [row for rows in blocks.values() for row in rows]
    width_name = max([len(name) for name, _, _ in everything] + [4])
    width_origin = max([len(origin) for _, origin, _ in everything] + [12])
    lines = []
    for group, rows in blocks.items():
        lines.append(f"{group} ({len(rows)})")
        if not rows:
            lines.append("  (none installed)")
        lines.extend(f"  {name:<{width_name}}  {origin:<{width_origin}}  {text}" for name, origin, text in rows)
        lines.append("")
    broken = len(registry.errors()) + sum(row["error"] is not None for row in methods)
    lines.append(f"{len(everything)} components, {broken} with errors")
    return "\n".join(lines)


def _run_check(registry, only: str | None, quiet: bool) -> int:
    """Run the kit over every entry; print one line per check; return the exit code."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dlcore.testing import run_checks
    from dlcore.testing.kit import CheckResult, Outcome

    labels = {Outcome.PASSED: "PASS", Outcome.FAILED: "FAIL", Outcome.XFAILED: "XFAIL", Outcome.XPASSED: "XPASS",
              Outcome.SKIPPED: "SKIP"}
    counts = {status: 0 for status in labels}
    start = time.perf_counter()
    for e in registry.entries():
        if only and only not in e.name and only not in e.qualified_name:
            continue
        who = e.qualified_name if len(registry.claims(e.group, e.name)) > 1 else e.name
        component = f"{e.group}/{who}"
        if e.error is not None or e.cls is None:
            results = [CheckResult(component, "check_loads", Outcome.FAILED, e.error or "no class loaded")]
        else:
            results = run_checks(e.cls, name=component)
        for r in results:
            counts[r.status] += 1
            if quiet and r.status is Outcome.PASSED:
                continue
            click.echo(f"{labels[r.status]:<5}  {component:<32}  {r.check:<28}  {r.seconds:6.2f}s")
            if r.message and r.status is not Outcome.PASSED:
                for line in r.message.splitlines():
                    click.echo(f"       {line}")
        sys.stdout.flush()
    if only and not any(counts.values()):  # a typo must not pass a CI gate by checking nothing
        click.echo(f"error: --only {only!r} matches no installed component (see dljobs plugins)", err=True)
        return 2
    took = time.perf_counter() - start
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n or status in (Outcome.PASSED, Outcome.FAILED))
    click.echo(f"{summary} in {took:.1f}s")
    return 1 if counts[Outcome.FAILED] or counts[Outcome.XPASSED] else 0


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the listing as one JSON object (keys: the groups).")
@click.option("--check", "run_kit", is_flag=True, help="Run the conformance kit over everything installed; exit 1 on any failure.")
@click.option("--only", metavar="NAME", default=None, help="With --check: only components whose name contains NAME.")
@click.option("-q", "--quiet", is_flag=True, help="With --check: print only checks that did not pass.")
def plugins(as_json: bool, run_kit: bool, only: str | None, quiet: bool) -> None:
    """List the installed components (layers, activations, ..., datasets) and where they come from."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dlcore.registry import default_registry

    registry = default_registry()
    if as_json and run_kit:
        raise click.UsageError("--json and --check are separate: list, or check")
    if (only is not None or quiet) and not run_kit:
        raise click.UsageError("--only and --quiet go with --check (the listing always shows everything)")
    if as_json:
        # deferred: the search methods only for the listing that shows them
        from dljobs.search.registry import plugin_listing

        click.echo(json.dumps(plugin_listing(), indent=2, sort_keys=False))
        return
    if run_kit:
        sys.exit(_run_check(registry, only, quiet))
    click.echo(_rows_text(registry))
