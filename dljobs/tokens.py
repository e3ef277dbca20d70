"""API tokens: who a request is, and whose jobs and datasets it may see.

A token is ``dlj_`` and 32 random bytes (URL-safe base64); it is shown once, when
made, and stored only as its SHA-256.  A high-entropy token needs no slow hash: a
guess costs as much as guessing the 256 bits.  :func:`authenticate` looks the hash up
(one indexed query) and compares it again with ``hmac.compare_digest`` so no
comparison the service makes depends on how many leading characters matched.

Every job and dataset has the owner of the token that made it; a token sees its
owner's rows only, an admin token sees all (``dljobs.queries`` applies it, the API's
``api.lookups`` passes it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from dljobs.db.models import ApiToken, utcnow

TOKEN_PREFIX = "dlj_"

#: ``last_used_at`` is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(minutes=1)

#: A token name: what ``dljobs tokens`` and the audit show (the column is 100 long).
MAX_NAME = 100


@dataclass(frozen=True)
class Principal:
    """Who a request is: the token's name, the owner it acts for, and whether it sees all."""

    name: str
    owner: str
    admin: bool


class TokenError(ValueError):
    """A token that cannot be made: a duplicate or empty name."""


class TokensUnavailable(RuntimeError):
    """The database could not say whether a token is valid (the API answers 503, not 401)."""


def hash_token(plain: str) -> str:
    """The stored form of a token: the hex SHA-256 of its text."""
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def new_plain_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(session: Session, name: str, *, admin: bool = False, owner: str | None = None) -> str:
    """Store a new token and commit; returns its plain text (the only time it exists).

    Inputs:
    - name: unique among tokens, revoked ones included (1 to 100 characters).
    - admin: sees and acts on every owner's jobs and datasets.
    - owner: whose rows it sees and makes (default: ``name``).
    Raises TokenError when the name is empty, too long or taken.
    """
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise TokenError(f"a token name is 1 to {MAX_NAME} characters, got {len(name)}")
    owner = (owner or name).strip()
    if not owner or len(owner) > 255:
        raise TokenError(f"an owner is 1 to 255 characters, got {len(owner)}")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already (revoked ones keep their name)")
    plain = new_plain_token()
    session.add(ApiToken(name=name, owner=owner, admin=bool(admin), token_hash=hash_token(plain),
                         created_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # the same name made at the same moment by another process
        raise TokenError(f"a token named {name!r} exists already") from None
    return plain


def authenticate(session: Session, plain: str | None) -> Principal | None:
    """The principal of a valid, unrevoked token, or None for anything else."""
    if not plain or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    digest = hash_token(plain)
    try:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    except SQLAlchemyError as exc:
        session.rollback()
        raise TokensUnavailable(f"the token could not be checked: {type(exc).__name__}") from exc
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        try:
            session.commit()
        except Exception:  # noqa: BLE001 - a busy database must not refuse a valid token
            session.rollback()
    return Principal(name=row.name, owner=row.owner, admin=bool(row.admin))


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, oldest first, revoked ones included (their hashes are no secret to hide)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, name: str) -> bool:
    """Revoke the token named ``name`` and commit; False when there is none (or it was revoked)."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.commit()
    return True


#: The name of the admin token ``dljobs up`` makes on first start (a suffix when it is taken).
LOCAL_ADMIN_NAME = "local-admin"


def ensure_token_file(session: Session, path) -> str:
    """The local admin token of ``dljobs up``: the one in ``path`` if the database knows it.

    Otherwise (first start, or a fresh database under an old file) a new admin token is
    made and written to ``path`` with mode 0600, its directory made 0700 first.
    Returns the plain token.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)  # the database and the token file: the owner's alone
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if existing and authenticate(session, existing) is not None:
        os.chmod(path, 0o600)
        return existing
    taken = {t.name for t in list_tokens(session)}
    name = LOCAL_ADMIN_NAME
    n = 1
    while name in taken:
        n += 1
        name = f"{LOCAL_ADMIN_NAME}-{n}"
    plain = create_token(session, name, admin=True, owner="local")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
        os.write(fd, (plain + "\n").encode())
    finally:
        os.close(fd)
    return plain
