"""A bench section for tests/bench/test_sections.py: it runs until interrupted, and says in
``marker`` that its cleanup ran (as bench.service's ``finally`` stops its workers)."""

from __future__ import annotations

import time
from pathlib import Path


def run(marker: str, seconds: float = 120.0) -> dict:
    Path(marker).write_text("started")
    try:
        time.sleep(seconds)
    finally:
        Path(marker).write_text("cleaned up")
    return {"slept_s": seconds}
