"""``dljobs sweep SPEC [--follow]``: submit a sweep, and with ``--follow`` watch its leaderboard live.

SPEC is a JSON file holding the body of ``POST /api/v1/sweeps`` (``docs/sweeps.md``), or
``-`` for standard input.  Exit codes: 0 submitted (with ``--follow``: the sweep
succeeded), 1 the sweep failed or was cancelled, 2 the server refused the request (4xx,
every field at fault printed), 3 the server is unreachable or failed (5xx).
"""

from __future__ import annotations

import json
import os
import sys

import click

EXIT_OK, EXIT_SWEEP_FAILED, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8000"


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


@click.command("sweep")
@click.argument("spec", type=click.File("r"))
@click.option("--follow", "-f", is_flag=True, help="Watch the leaderboard until the sweep ends.")
@click.option("--url", default=lambda: os.environ.get("DLJOBS_URL", DEFAULT_URL), show_default=DEFAULT_URL,
              help="The API's address (DLJOBS_URL).")
@click.option("--token", default=None, help="Bearer token (default: DLJOBS_TOKEN, then <data-dir>/token).")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.05, 60), help="Seconds between looks.")
def sweep(spec, follow: bool, url: str, token: str | None, poll: float) -> None:
    """Submit the sweep in SPEC (a JSON file, - for stdin); --follow shows a live leaderboard."""
    # deferred: requests and the client only for commands that talk to a server
    import requests  # noqa: I001 - one deferred block
    from dljobs.client import ApiError, Client
    from dljobs.lifecycle import SweepStatus

    try:
        body = json.load(spec)
    except ValueError as exc:
        click.echo(f"{spec.name}: not JSON: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    api = Client(url, token=token)
    try:
        created = api.submit_sweep(body)
        click.echo(f"sweep {created['id']} submitted ({len(created['leaderboard'])} trials started)")
        if not follow:
            sys.exit(EXIT_OK)
        last: list[str] = []

        def show(current: dict) -> None:
            nonlocal last
            lines = leaderboard_lines(current)
            if lines != last:
                click.echo("\n".join(lines) + "\n")
                last = lines

        done = api.wait_sweep(created["id"], poll_s=poll, on_change=show)
    except ApiError as exc:
        if exc.status >= 500:
            click.echo(f"server error {exc.status}: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        click.echo(f"refused ({exc.status}): {exc.problem.get('detail') or exc.problem.get('title')}", err=True)
        for item in exc.problem.get("errors") or []:
            click.echo(f"  {item.get('field')}: {item.get('message')}", err=True)
        sys.exit(EXIT_REFUSED)
    except requests.RequestException as exc:
        click.echo(f"cannot reach {url}: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    sys.exit(EXIT_OK if done["status"] == SweepStatus.SUCCEEDED else EXIT_SWEEP_FAILED)
