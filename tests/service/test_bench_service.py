"""bench/service.py's output: the `service` entry joins bench/results.json without
touching the networks' part, and the table shows every figure it measured."""

from __future__ import annotations

import json

from bench import service
from dlcore.spec import validate

FIGURES = {
    "idle_worker_cpu_percent": 0.7,
    "embedded": {"submit_to_running_p50_ms": 20.2, "submit_to_running_max_ms": 31.0,
                 "one_iteration_job_p50_ms": 40.1, "rounds": 15},
    "redis": {"submit_to_running_p50_ms": 9.9, "submit_to_running_max_ms": 14.0,
              "one_iteration_job_p50_ms": 31.9, "rounds": 15},
    "bookkeeping": {"digits_mlp": {"dljobs_train_s": 0.148, "service_s": 0.185, "ratio": 1.25, "rounds": 7}},
}  # fmt: skip


def test_the_service_entry_is_merged_into_the_results_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"machine": {"cores": 2}, "networks": {"mlp": {"threads": {}}}}))
    service.write_results(FIGURES, path)
    results = json.loads(path.read_text())
    assert results["machine"] == {"cores": 2} and results["networks"] == {"mlp": {"threads": {}}}
    assert results["service"] == FIGURES
    service.write_results(FIGURES, tmp_path / "new.json")  # no file yet: written from nothing
    assert json.loads((tmp_path / "new.json").read_text()) == {"service": FIGURES}


def test_the_table_shows_each_broker_and_each_bookkeeping_ratio():
    text = service.table(FIGURES)
    assert "embedded  submit -> running p50    20.2 ms" in text
    assert "redis     submit -> running p50     9.9 ms" in text
    assert "digits_mlp" in text and "ratio 1.25" in text and "0.70 % of a core" in text
    assert "redis" not in service.table({**FIGURES, "redis": None})


def test_the_bench_specs_are_valid_and_the_20_epoch_mlp_is_what_it_says():
    for spec in (service.TINY, service.digits_mlp(), service.mlp_20_epochs()):
        validate(spec)
    assert service.mlp_20_epochs()["training"]["epochs"] == 20
