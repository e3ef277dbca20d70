"""Who is whose child: the process table read from /proc (Linux), for orderly stops.

``dljobs up`` collects a worker's process group before it stops it; a worker's main
process finds its pool children to tell them to hand their jobs back.
"""

from __future__ import annotations

from pathlib import Path


def _stat_fields():
    """``(pid, fields after the command name)`` of every process; vanished ones are skipped."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ")"
        yield int(entry.name), stat.rsplit(")", 1)[1].split()


def children_of(parent: int) -> list[int]:
    """The pids whose parent is ``parent``."""
    return [pid for pid, fields in _stat_fields() if int(fields[1]) == parent]


def group_members(pgid: int) -> list[int]:
    """Every process of process group ``pgid`` (a Celery worker and its pool children)."""
    return [pid for pid, fields in _stat_fields() if int(fields[2]) == pgid]
