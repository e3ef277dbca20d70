"""One process at a time across every worker: a non-blocking lock in the database.

PostgreSQL: a transaction-level advisory lock on a connection of its own, held until the
block ends (a process that dies drops its connection, and the lock with it).  SQLite is
one machine by definition: an ``fcntl`` lock on a file in the data directory.
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select

from dljobs.db.session import get_engine


def _key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name``."""
    return zlib.crc32(f"dljobs:{name}".encode()) - 2**31


@contextmanager
def try_exclusive(settings, name: str) -> Iterator[bool]:
    """Yield True while this process alone holds lock ``name``, False if another holds it."""
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
    with get_engine(url).connect() as conn, conn.begin():
        yield bool(conn.scalar(select(func.pg_try_advisory_xact_lock(_key(name)))))
