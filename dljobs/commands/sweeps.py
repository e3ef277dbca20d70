"""``dljobs sweep SPEC [--follow]``: submit a sweep, and with ``--follow`` watch its leaderboard live.

SPEC is a JSON file holding the body of ``POST /api/v1/sweeps`` (``docs/sweeps.md``), or
``-`` for standard input.  Exit codes: 0 submitted (with ``--follow``: the sweep
succeeded), 1 the sweep failed or was cancelled, 2 the server refused the request (4xx,
every field at fault printed), 3 the server is unreachable or failed (5xx).
"""

from __future__ import annotations

import json
import sys

import click

from dljobs.commands.remote import (
    INTERRUPTED,
    JOB_NOT_SUCCEEDED,
    ServiceCommand,
    read_spec,
    service_options,
)


def leaderboard_lines(sweep: dict, top: int = 20) -> list[str]:
    """The sweep's status line and its leaderboard as a plain-text table, best first."""
    board = sweep.get("leaderboard") or []
    counts = ", ".join(f"{n} {status}" for status, n in sorted((sweep.get("trials") or {}).items()))
    lines = [(f"sweep {sweep['id']} ({sweep.get('name')}): {sweep['status']}; {sweep['metric']}; "
             f"{counts or 'no trials yet'}; best job {sweep.get('best_job_id') or '-'}")]
    lines.append(f"{'#':>3}  {'trial':>5}  {'status':<13} {'val_acc':>8} {'val_loss':>9} {'ep':>4}  params")
    for rank, row in enumerate(board[:top], start=1):
        acc = "-" if row.get("val_accuracy") is None else f"{row['val_accuracy']:.4f}"
        loss = "-" if row.get("val_loss") is None else f"{row['val_loss']:.4f}"
        params = ", ".join(f"{k}={_short(v)}" for k, v in (row.get("params") or {}).items())
        tail = f"  ({row['reason']})" if row.get("reason") else ""
        lines.append(f"{rank:>3}  {row['trial']:>5}  {row.get('status') or 'invalid':<13} {acc:>8} {loss:>9} "
                     f"{row.get('epochs', 0):>4}  {params}{tail}")
    if len(board) > top:
        lines.append(f"... and {len(board) - top} more")
    return lines


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)


@click.command("sweep", cls=ServiceCommand)
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--follow", "-f", is_flag=True, help="Watch the leaderboard until the sweep ends.")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.05, 60), help="Seconds between looks.")
@service_options
def sweep(client, spec_path: str, follow: bool, poll: float) -> None:
    """Submit the sweep in SPEC (a JSON file, - for stdin); --follow shows a live leaderboard.

    Ctrl-C stops watching (exit 130); the sweep keeps running.
    """
    # deferred: the lifecycle names only for the command that reads a sweep's status
    from dljobs.lifecycle import SweepStatus

    created = client.submit_sweep(read_spec(spec_path, what="a sweep"))
    click.echo(f"sweep {created['id']} submitted ({len(created['leaderboard'])} trials started)")
    if not follow:
        return
    last: list[str] = []

    def show(current: dict) -> None:
        nonlocal last
        lines = leaderboard_lines(current)
        if lines != last:
            click.echo("\n".join(lines) + "\n")
            last = lines

    try:
        done = client.wait_sweep(created["id"], poll_s=poll, on_change=show)
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; sweep {created['id']} keeps running "
                   f"(dljobs sweep cancels nothing: POST /api/v1/sweeps/{created['id']}/cancel does)", err=True)
        sys.exit(INTERRUPTED)
    if done["status"] != SweepStatus.SUCCEEDED:
        click.echo(f"sweep {done['id']} {done['status']}" + (f": {done['error']}" if done.get("error") else ""),
                   err=True)
        sys.exit(JOB_NOT_SUCCEEDED)
