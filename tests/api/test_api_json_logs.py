"""``DLJOBS_LOG_JSON=1``: the API process logs JSON lines (``dljobs.logging_json``)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from api import create_app
from dljobs.logging_json import JsonLineFormatter


@pytest.fixture
def root_handler():
    """A handler on the root logger writing to a buffer; the root's handlers are restored after."""
    root = logging.getLogger()
    saved = [(h, h.formatter, list(h.filters)) for h in root.handlers]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    yield handler, stream
    root.removeHandler(handler)
    for h, formatter, filters in saved:
        h.setFormatter(formatter)
        h.filters[:] = filters


def test_the_api_logs_json_lines_when_asked(tmp_path, monkeypatch, root_handler):
    handler, stream = root_handler
    monkeypatch.setenv("DLJOBS_LOG_JSON", "1")
    create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    assert isinstance(handler.formatter, JsonLineFormatter)
    logging.getLogger("dljobs.api").warning("readyz: the %s check failed", "database")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "readyz: the database check failed"
    assert line["level"] == "WARNING" and line["logger"] == "dljobs.api" and "job_id" not in line


def test_plain_text_by_default(tmp_path, monkeypatch, root_handler):
    handler, _ = root_handler
    monkeypatch.delenv("DLJOBS_LOG_JSON", raising=False)
    create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    assert not isinstance(handler.formatter, JsonLineFormatter)
