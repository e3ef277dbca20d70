"""Every way the API is started gets the same stream capacity: 128 streams, 8 threads to spare.

``dljobs api`` and ``dljobs up`` build their gunicorn command with ``api_command``;
compose writes its own.  A stream holds a gthread thread while it waits, so the
per-process cap (``DLJOBS_SSE_MAX_STREAMS``) must stay 8 below the threads.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from api.events import DEFAULT_MAX_STREAMS
from dljobs.commands.service import API_THREADS, api_command
from dljobs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _threads(argv: list[str]) -> int:
    return int(argv[argv.index("--threads") + 1])


def test_the_embedded_and_api_commands_run_the_streams_plus_eight_threads():
    assert Settings().sse_max_streams == DEFAULT_MAX_STREAMS == 128
    assert _threads(api_command("127.0.0.1:0")) == API_THREADS == Settings().sse_max_streams + 8
    assert "gthread" in api_command("127.0.0.1:0")


def test_compose_runs_the_same_threads():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["api"]["command"]
    assert command[:3] == ["gunicorn", "-k", "gthread"]
    assert _threads(command) == API_THREADS
    assert "DLJOBS_SSE_MAX_STREAMS" not in str(compose["services"]["api"].get("environment"))  # the default
