"""An artifact larger than one PostgreSQL value reads back (once over 512 MiB failed), and reading
it, spooling it or downloading it holds a few chunks, never the whole, in memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from dljobs import artifacts, jobstore, testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.session import session_factory
from dljobs.settings import Settings
from tests.conftest import require_service

MIB = 2**20
CHUNKS = 72  # 576 MiB: past the 512 MiB one bytea value could be read back
#: Generous: the spool's in-memory part (32 MiB) and a few chunks in flight, ten times below the size.
PEAK_BOUND = 100 * MIB


def rss_peak_reset() -> bool:
    """Reset this process's peak RSS (VmHWM), where Linux allows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def measured(read) -> tuple[int, int | None]:
    """(Python allocation peak, RSS growth peak or None) of calling ``read()``, in bytes."""
    can_reset = rss_peak_reset()
    before = rss_kib("VmRSS")
    tracemalloc.start()
    try:
        read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss = (rss_kib("VmHWM") - before) * 1024 if can_reset else None
    return peak, rss


@pytest.mark.service
@pytest.mark.slow
def test_reading_a_576_mib_artifact_on_postgresql_holds_far_less_than_its_size(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with testsupport.fresh_postgres_database() as url:
        upgrade(url)
        settings = Settings(data_dir=tmp_path, database_url=url)
        factory = session_factory(settings)
        with factory() as session:
            job_id = jobstore.create_job(session, {"dataset": {"type": "digits"}}, None).id
            attempt = jobstore.claim(session, job_id, "h", 1, 60)
        written = hashlib.sha256()

        def source():
            for _ in range(CHUNKS):
                piece = os.urandom(artifacts.CHUNK_BYTES)
                written.update(piece)
                yield piece

        assert artifacts.write_artifact(factory, job_id, attempt, artifacts.MODEL, 1, source())
        with factory() as session:
            row = artifacts.model_artifact(session, job_id)
        size = CHUNKS * artifacts.CHUNK_BYTES
        assert row.size_bytes == size and row.sha256 == written.hexdigest()

        read = hashlib.sha256()

        def stream():
            for piece in artifacts.iter_chunks(factory, row):
                read.update(piece)

        peak, rss = measured(stream)
        assert read.hexdigest() == written.hexdigest()
        assert peak < PEAK_BOUND, f"streaming {size / MIB:.0f} MiB peaked at {peak / MIB:.0f} MiB"
        assert rss is None or rss < PEAK_BOUND, f"streaming grew the RSS by {rss / MIB:.0f} MiB"

        def spool():
            with artifacts.spooled_copy(factory, row) as copy:  # checks the sha256 on the way
                copy.seek(0, os.SEEK_END)
                assert copy.tell() == size

        peak, rss = measured(spool)
        assert peak < PEAK_BOUND, f"spooling {size / MIB:.0f} MiB peaked at {peak / MIB:.0f} MiB"
        assert rss is None or rss < PEAK_BOUND, f"spooling grew the RSS by {rss / MIB:.0f} MiB"
        print(f"576 MiB artifact: stream/spool peaks {peak / MIB:.1f} MiB (Python), RSS growth "
              f"{'n/a' if rss is None else f'{rss / MIB:.1f} MiB'}")
