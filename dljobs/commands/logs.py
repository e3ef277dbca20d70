"""``dljobs logs ID [--follow]``: a job's log lines, as its workers wrote them.

Over the HTTP API (``GET /jobs/<id>/logs``), with ``--url`` / ``DLJOBS_URL`` and
``--token`` / ``DLJOBS_TOKEN`` / the token file.  Exit codes: 0 ok; 2 a 4xx (an unknown
job, a bad token: the problem on stderr); 3 the service unreachable or a 5xx.
Ctrl-C stops following, not the job.
"""

from __future__ import annotations

import json
import sys

import click

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_CLIENT_ERROR = 2
EXIT_UNAVAILABLE = 3


def format_line(line: dict, show_logger: bool = False) -> str:
    """``<time> <LEVEL> <message>`` (and the logger's name with ``show_logger``)."""
    where = f" {line['logger']}" if show_logger else ""
    return f"{line['created_at']} {line['level']:<7}{where} {line['message']}"


@click.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--after", default=0, show_default=True, type=click.IntRange(0),
              help="Start after this line (its seq).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--show-logger", is_flag=True, help="Print each line's logger name.")
@click.option("--url", envvar="DLJOBS_URL", default=DEFAULT_URL, show_default=True,
              help="The API (DLJOBS_URL).")
@click.option("--token", envvar="DLJOBS_TOKEN", default=None,
              help="Bearer token (DLJOBS_TOKEN; else <DLJOBS_DATA_DIR>/token).")
def logs(job_id: str, follow: bool, after: int, as_json: bool, show_logger: bool, url: str,
         token: str | None) -> None:
    """Print the log lines of job JOB_ID (what its workers logged while running it)."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    import requests

    # deferred: the client (requests, numpy) only for the command that calls the API
    from dljobs.client import ApiError, Client

    client = Client(url, token=token)
    try:
        for line in client.iter_logs(job_id, after=after, follow=follow):
            click.echo(json.dumps(line) if as_json else format_line(line, show_logger))
    except KeyboardInterrupt:
        sys.exit(0)  # stops following; the job goes on
    except ApiError as exc:
        click.echo(f"dljobs logs: {exc.status} {exc.title}: {exc.detail}", err=True)
        if getattr(exc, "looked", None):
            click.echo(f"  token looked for in: {exc.looked}", err=True)
        for error in exc.errors:
            click.echo(f"  {error.get('field')}: {error.get('message')}", err=True)
        sys.exit(EXIT_UNAVAILABLE if exc.status >= 500 else EXIT_CLIENT_ERROR)
    except requests.RequestException as exc:
        click.echo(f"dljobs logs: the service at {url} does not answer ({type(exc).__name__})", err=True)
        sys.exit(EXIT_UNAVAILABLE)
