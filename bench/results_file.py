"""bench/results.json: the one file every part of `make bench` writes its figures into.

A part run on its own (``python -m bench.joblist``, ``bench.service``...) puts its figures
at its place and keeps everything else, so the file always holds the latest of each part.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"


def merge(where: tuple[str, ...], figures, path: Path = RESULTS) -> None:
    """Put ``figures`` at ``where`` (e.g. ``("service", "joblist")``) in ``path``, keeping the rest."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        results = {}
    node = results
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = figures
    path.write_text(json.dumps(results, indent=2) + "\n")
