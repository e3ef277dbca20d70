"""One process at a time across every worker: a non-blocking lock in the database.

PostgreSQL: a transaction-level advisory lock on a connection of its own, held until the
block ends (a process that dies drops its connection, and the lock with it).  A holder
cut off by the network does not drop it: the server (or a proxy in between) still sees an
open connection.  So the server ends a lock transaction idle for longer than
``hold_limit_s`` (``idle_in_transaction_session_timeout``), and the others take over.  SQLite is
one machine by definition: an ``fcntl`` lock on a file in the data directory.
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select, text

from dljobs.db.session import get_engine


def _key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return zlib.crc32(f"dljobs:{name}".encode()) - 2**31


@contextmanager
def try_exclusive(settings, name: str, hold_limit_s: float | None = None) -> Iterator[bool]:
    """Yield True while this process alone holds lock ``name``, False if another holds it.

    ``hold_limit_s`` (PostgreSQL; default twice ``DLJOBS_HEARTBEAT_TIMEOUT_S``): a holder
    silent this long loses the lock, as a worker silent that long loses its job.
    """
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.data_path.mkdir(parents=True, exist_ok=True)
        with open(settings.data_path / f".{name}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    limit_ms = int(1000 * (hold_limit_s if hold_limit_s is not None else 2 * settings.heartbeat_timeout_s))
    with get_engine(url).connect() as conn, conn.begin():
        conn.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {max(limit_ms, 1000)}"))
        yield bool(conn.scalar(select(func.pg_try_advisory_xact_lock(_key(name)))))
