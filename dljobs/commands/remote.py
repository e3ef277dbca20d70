"""What every command that talks to a running service shares: where it is, the token, and
the one place that turns what went wrong into an exit code.

Exit codes (the same for every such command, so scripts can branch on them):

- 0: done, or the job followed succeeded (``stopped_early`` too: early stopping succeeds);
- 1: the job followed failed or was cancelled;
- 2: a usage error, or the service refused the request (any 4xx): its problem's title,
  detail and each field error go to stderr;
- 3: the service is unreachable, timed out, or answered a 5xx;
- 130: Ctrl-C while following (the job keeps running).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

#: The service ``--url`` names when neither it nor ``DLJOBS_URL`` is given.
DEFAULT_URL = "http://127.0.0.1:8000"

OK = 0
JOB_NOT_SUCCEEDED = 1
REFUSED = 2  # click's own code for a usage error, and ours for any 4xx
UNREACHABLE = 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class JobEnded(Exception):
    """The job a command waited for ended without succeeding (exit code 1)."""

    def __init__(self, job: dict):
        self.job = job
        error = job.get("error") or {}
        reason = f": {error.get('code')}: {error.get('message')}" if error else ""
        super().__init__(f"job {job['id']} {job['status']}{reason}")


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code for an exception a service command raised; None for one that is a bug.

    Inputs:
    - exc: what the command raised.
    Returns: 1 (job not succeeded), 2 (a 4xx), 3 (unreachable or a 5xx), or None.
    """
    # deferred: requests and the client load only in commands that talk to a service
    import requests

    from dljobs.client import ApiError

    if isinstance(exc, JobEnded):
        return JOB_NOT_SUCCEEDED
    if isinstance(exc, ApiError):
        return REFUSED if exc.status < 500 else UNREACHABLE
    if isinstance(exc, bad_url_errors(requests)):
        return REFUSED  # --url itself is wrong: a usage error, whatever runs there
    if isinstance(exc, requests.RequestException):
        return UNREACHABLE
    return None


def bad_url_errors(requests) -> tuple[type[Exception], ...]:
    """What ``requests`` raises for a URL that cannot be asked at all (``--url foo``)."""
    return (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL)


def problem_lines(exc) -> list[str]:
    """What stderr says of an ``ApiError``: status and title, detail, then one line per field."""
    lines = [f"error: {exc.status} {exc.title}".rstrip()]
    messages = [str(e.get("message") or "") for e in exc.errors]
    # The detail often lists the field errors again: then the lines below say it once.
    if exc.detail and not any(m and m in exc.detail for m in messages):
        lines.append(f"  {exc.detail}")
    lines += [f"  {e.get('field') or '(request)'}: {e.get('message')}" for e in exc.errors]
    looked = getattr(exc, "looked", None)
    if looked:
        lines.append(f"  token looked for in: {looked}")
    return lines


def _explain(exc: BaseException, url: str) -> list[str]:
    # deferred: requests and the client load only in commands that talk to a service
    import requests

    from dljobs.client import ApiError

    if isinstance(exc, ApiError):
        return problem_lines(exc)
    if isinstance(exc, bad_url_errors(requests)):
        return [f"error: --url {url}: not a service URL (like {DEFAULT_URL}): {exc}"]
    if isinstance(exc, requests.ConnectionError):
        hint = "is `dljobs up` running? --url or DLJOBS_URL names another"
        return [f"error: cannot reach the dljobs service at {url} ({hint})"]
    if isinstance(exc, requests.Timeout):
        return [f"error: the dljobs service at {url} did not answer in time"]
    if isinstance(exc, requests.RequestException):
        return [f"error: talking to {url}: {exc}"]
    return [f"error: {exc}"]


class StoredId(click.ParamType):
    """A job or dataset id as the service stores them: 1-64 letters, digits, ``_`` and ``-``.

    Checked here because an id goes into the URL's path: ``../datasets/x`` would ask
    another resource than the one named, where the server answers any such id "not found".
    """

    name = "id"
    CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")

    def convert(self, value, param, ctx):
        text = str(value)
        if not 0 < len(text) <= 64 or not set(text) <= self.CHARS:
            self.fail(f"{text!r} is not an id (1-64 letters, digits, _ and -)", param, ctx)
        return text


#: The type of every ID argument.
ID = StoredId()


class ServiceCommand(click.Command):
    """A command whose failures become the exit codes above, with one clear message.

    Anything else (a bug) keeps its traceback: hiding it would hide the fix.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:  # click would say "Aborted!" and exit 1, which means "job failed"
            click.echo("\ninterrupted", err=True)
            ctx.exit(INTERRUPTED)
        except Exception as exc:
            code = exit_code_of(exc)
            if code is None:
                raise
            for line in _explain(exc, ctx.meta.get("dljobs.url", DEFAULT_URL)):
                click.echo(line, err=True)
            ctx.exit(code)


class ServiceGroup(click.Group):
    """A group (``dljobs datasets``) whose subcommands are :class:`ServiceCommand` s."""

    command_class = ServiceCommand


def service_options(command: Callable) -> Callable:
    """``--url`` and ``--token`` on a command; the command receives a ready ``client``."""

    @click.option("--url", envvar="DLJOBS_URL", default=DEFAULT_URL, show_default=True,
                  help="The dljobs service (DLJOBS_URL).")
    # Not click's envvar: the client reads DLJOBS_TOKEN itself, and then says where a
    # refused token came from (--token, DLJOBS_TOKEN or the token file).
    @click.option("--token", default=None,
                  help="Bearer token (else DLJOBS_TOKEN, else the file `dljobs up` writes, "
                       "<DLJOBS_DATA_DIR>/token).")
    @functools.wraps(command)
    def with_client(*args, url: str, token: str | None, **kwargs):
        # deferred: requests and the client load only in commands that talk to a service
        from dljobs.client import Client

        click.get_current_context().meta["dljobs.url"] = url
        client = Client(url, token=token)
        if token:
            client.token_source = "--token"
        return command(*args, client=client, **kwargs)

    return with_client


def read_spec(path: str, what: str = "a job spec") -> dict:
    """The JSON object in the file ``path`` (``-``: stdin), ``what`` it holds; a usage error (2) otherwise."""
    try:
        text = click.get_text_stream("stdin").read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="SPEC") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{path}: not valid JSON: {exc}", param_hint="SPEC") from None
    except RecursionError:
        raise click.BadParameter(f"{path}: JSON nested too deeply", param_hint="SPEC") from None
    if not isinstance(spec, dict):
        raise click.BadParameter(f"{path}: {what} is a JSON object, not {type(spec).__name__}",
                                 param_hint="SPEC")
    return spec



# ---------------------------------------------------------------------------- output


def echo_json(data) -> None:
    """One JSON document on stdout, for scripts (``--json``)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()) -> str:
    """Rows as aligned columns under ``headers``; columns in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = set(right)
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def age(iso_time: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO-8601 time was, shortly: ``12s``, ``5m``, ``3h``, ``2d``."""
    if not iso_time:
        return ""
    then = datetime.fromisoformat(iso_time)
    seconds = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def percent(value) -> str:
    return "" if value is None else f"{100 * float(value):.1f}%"


def colour_enabled() -> bool:
    """Whether stderr is a terminal that takes colours (never when NO_COLOR is set)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")
