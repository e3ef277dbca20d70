"""The embedded transport polls its queue folder often enough for a prompt start.

kombu's filesystem transport sleeps ``polling_interval`` between two empty listings of
the folder; at its 0.2 s a job waited 136 ms p50 to start.  The figure itself is
measured by ``make bench`` (bench/service.py), never asserted on a clock here: this
checks that the interval we set is the one kombu's transport runs with.
"""

from __future__ import annotations

from dljobs.broker import EMBEDDED_POLLING_INTERVAL_S, celery_config, make_celery
from dljobs.settings import Settings


def test_the_embedded_transport_runs_with_our_polling_interval(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert celery_config(settings)["broker_transport_options"]["polling_interval"] == EMBEDDED_POLLING_INTERVAL_S
    # Half the 50 ms target at most, and not a busy loop (each poll lists a folder).
    assert 0.005 <= EMBEDDED_POLLING_INTERVAL_S <= 0.025
    app = make_celery(settings)
    with app.connection_for_read() as connection:
        connection.connect()
        assert connection.transport.polling_interval == EMBEDDED_POLLING_INTERVAL_S


def test_a_server_broker_gets_no_filesystem_options(tmp_path):
    options = celery_config(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0"))[
        "broker_transport_options"
    ]
    assert "polling_interval" not in options and "data_folder_in" not in options
