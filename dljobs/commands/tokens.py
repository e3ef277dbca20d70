"""``dljobs tokens create|list|revoke``: the API's bearer tokens, in the service's database.

The database is the one the service uses (``DLJOBS_DATABASE_URL``, or the SQLite file
under ``--data-dir``); it is brought to the latest schema first, so a token can be
made before the first ``dljobs up``.  A token is printed once, by ``create``, and
never again: the database keeps only its hash.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

DATA_DIR_OPTION = click.option("--data-dir", default=None, help="Data directory (DLJOBS_DATA_DIR).")


def _session():
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.db.migrate import upgrade
    from dljobs.db.session import session_factory
    from dljobs.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    upgrade(settings.effective_database_url)
    return session_factory(settings)()


def _apply_data_dir(data_dir: str | None) -> None:
    if data_dir:
        os.environ["DLJOBS_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())


@click.group("tokens")
def tokens() -> None:
    """API tokens: create (printed once), list, revoke."""


@tokens.command("create")
@click.option("--name", required=True, help="Unique name of the token (shown by list).")
@click.option("--admin", is_flag=True, help="The token sees every owner's jobs and datasets.")
@click.option("--owner", default=None, help="Whose jobs and datasets it sees and makes (default: the name).")
@DATA_DIR_OPTION
def create(name: str, admin: bool, owner: str | None, data_dir: str | None) -> None:
    """Make a token and print it once (the database keeps only its hash)."""
    _apply_data_dir(data_dir)
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.tokens import TokenError, create_token

    with _session() as session:
        try:
            plain = create_token(session, name, admin=admin, owner=owner)
        except TokenError as exc:
            click.echo(f"dljobs tokens create: {exc}", err=True)
            sys.exit(2)
    click.echo(plain)
    click.echo(f"token {name!r} made; it is shown only now (send it as 'Authorization: Bearer <token>')",
               err=True)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


@tokens.command("list")
@DATA_DIR_OPTION
def list_(data_dir: str | None) -> None:
    """Every token: name, owner, admin, created, last used, revoked (never the token)."""
    _apply_data_dir(data_dir)
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.tokens import list_tokens

    with _session() as session:
        rows = [(t.name, t.owner, "yes" if t.admin else "no", _when(t.created_at),
                 _when(t.last_used_at), _when(t.revoked_at)) for t in list_tokens(session)]
    header = ("NAME", "OWNER", "ADMIN", "CREATED", "LAST USED", "REVOKED")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@tokens.command("revoke")
@click.argument("name")
@DATA_DIR_OPTION
def revoke(name: str, data_dir: str | None) -> None:
    """Revoke the token NAME: requests carrying it are refused from now on."""
    _apply_data_dir(data_dir)
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.tokens import revoke_token

    with _session() as session:
        if not revoke_token(session, name):
            click.echo(f"dljobs tokens revoke: no active token named {name!r}", err=True)
            sys.exit(2)
    click.echo(f"token {name!r} revoked")
