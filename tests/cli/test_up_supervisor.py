"""What ``dljobs up`` says about its children when their logs go to files (the default).

Real child processes under the real :class:`Supervisor`; the signal handlers it installs
are put back afterwards.
"""

from __future__ import annotations

import signal
import sys

import pytest

from dljobs.commands.service import Supervisor, banner, port_in_use_reason


@pytest.fixture
def supervisor(tmp_path):
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield Supervisor(tmp_path / "logs")
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_ready_worker_is_announced_and_a_child_that_exits_shows_its_logs_end(supervisor, tmp_path, capsys):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker1.log").write_text("worker1@old ready.\nan earlier run's line\n")
    script = ("import time; print('celery banner noise', flush=True); "
              "print('[INFO/MainProcess] worker1@box ready.', flush=True); time.sleep(1.0); "
              "print('Traceback: the broker went away', flush=True); raise SystemExit(3)")
    supervisor.start("worker1", [sys.executable, "-c", script])
    assert supervisor.wait() == 3
    err = capsys.readouterr().err.splitlines()
    assert "dljobs up: worker1@box ready." in err  # this run's line, not the old run's
    assert not any("@old" in line for line in err)
    assert "Traceback: the broker went away" in err  # the end of its log
    assert "celery banner noise" in err and "an earlier run's line" not in err
    assert "dljobs up: worker1 exited with 3; stopping" in err


def test_the_banner_is_three_lines_and_says_where_the_logs_are(tmp_path):
    from dljobs.settings import Settings

    settings = Settings(data_dir=tmp_path)
    quiet = banner("http://127.0.0.1:8000/?token=t", settings, 2, tmp_path / "logs", 0).splitlines()
    assert quiet[0].startswith("dljobs up: http://127.0.0.1:8000/?token=t")
    assert [line.split()[0] for line in quiet[1:]] == ["data", "workers"]
    assert f"logs in {tmp_path / 'logs'}" in quiet[2]
    verbose = banner("u", settings, 1, None, 3).splitlines()
    assert "logs below" in verbose[2] and verbose[3].split() == ["queue", "3", "queued", "job(s)", "sent", "again"]


def test_a_free_port_has_no_reason_and_a_bound_one_has_one():
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert "already in use" in port_in_use_reason("127.0.0.1", port)
    assert port_in_use_reason("127.0.0.1", port) is None
    assert "cannot serve on" in port_in_use_reason("no-such-host.invalid", 8000)
