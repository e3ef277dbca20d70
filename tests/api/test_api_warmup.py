"""The warm-up gunicorn runs in each API process before it serves (``api.warmup``)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import dlcore.registry
from api import warmup
from dljobs.commands.service import api_command


def test_the_api_command_runs_the_warm_up_hook():
    argv = api_command("127.0.0.1:0")
    assert argv[argv.index("-c") + 1] == "python:api.warmup"
    assert callable(warmup.post_worker_init)


def test_a_warmed_process_has_its_registry_and_database_pool_built(app, monkeypatch):
    monkeypatch.setattr(dlcore.registry, "_default", None)  # as a fresh process has it
    app.extensions.pop("dljobs.sessions", None)
    warmup.post_worker_init(SimpleNamespace(wsgi=app))
    assert dlcore.registry._default is not None and "affine" in dlcore.registry._default.names("layer")
    engine = app.extensions["dljobs.sessions"].kw["bind"]
    assert engine.pool.checkedin() >= 1  # the connection the first request takes is open already


def test_a_failed_warm_up_is_logged_and_the_process_serves_anyway(caplog):
    with caplog.at_level(logging.WARNING, logger="dljobs.api.warmup"):
        assert warmup.post_worker_init(SimpleNamespace(wsgi=None)) is None
    assert "warm-up of the API process failed" in caplog.text
