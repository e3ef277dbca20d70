"""Submission bounds what a job will store and evaluate: its checkpoint's size and one evaluation
pass's memory, each error naming the field, the value and the limit (and the older limits on
parameters and epochs do too)."""

from __future__ import annotations

import re

import pytest

from api import create_app
from dlcore.errors import SpecError
from dljobs import testsupport
from dljobs.db.migrate import upgrade
from dljobs.db.session import session_factory
from dljobs.settings import Settings
from dljobs.specs import prepare_job_request

# digits: 64 inputs, 10 classes; 64*512+512 + 512*10+10 = 38,410 parameters
MLP = {
    "dataset": {"type": "digits"},
    "model": {"layers": [{"type": "affine", "units": 512}, {"type": "relu"}, {"type": "affine", "units": 10}]},
    "optimizer": {"type": "adam"},
    "training": {"dtype": "float64"},
}


@pytest.fixture
def session(tmp_path):
    settings = Settings(data_dir=tmp_path)
    upgrade(settings.effective_database_url)
    with session_factory(settings)() as s:
        yield s


def refused(session, body, **limits) -> dict[str, str]:
    """{field: message} of the errors a request with these limits gets."""
    with pytest.raises(SpecError) as caught:
        prepare_job_request(session, body, settings=Settings(**limits))
    return {e.field: e.message for e in caught.value.errors}


def test_a_checkpoint_over_the_limit_is_refused_with_its_size_and_the_limit(session):
    # 38,410 parameters x (1 + 2 adam slots) x 8 bytes = 921,840 bytes = 0.9 MiB: fits 1 MiB
    assert prepare_job_request(session, MLP, settings=Settings(max_checkpoint_mb=1)).summary[
        "checkpoint_bytes"] == 38_410 * 3 * 8
    wider = {**MLP, "model": {"layers": [{"type": "affine", "units": 2048}, {"type": "relu"},
                                         {"type": "affine", "units": 10}]}}
    message = refused(session, wider, max_checkpoint_mb=1)["model"]
    assert "3.5 MiB" in message and "153,610 parameters" in message and "2 optimizer slots" in message
    assert "1 MiB allowed" in message and "DLJOBS_MAX_CHECKPOINT_MB" in message
    # sgd keeps no slots: a third of the bytes, under the limit
    assert prepare_job_request(session, {**wider, "optimizer": {"type": "sgd"}},
                               settings=Settings(max_checkpoint_mb=2))


def test_an_evaluation_pass_over_the_limit_is_refused_with_its_memory_and_the_limit(session):
    # per sample: (64 + 512 + 512 + 10) values x 8 bytes = 8,784 bytes
    body = {**MLP, "training": {**MLP["training"], "eval_batch_size": 1_000_000}}
    message = refused(session, body)["training.eval_batch_size"]  # the defaults: 2,048 MiB
    assert "1,000,000 samples" in message and "8,377.1 MiB" in message and "8,784 bytes per sample" in message
    assert "2,048 MiB allowed" in message and "DLJOBS_MAX_EVAL_MEMORY_MB" in message
    fits = int(re.search(r"eval_batch_size of at most ([\d,]+)", message).group(1).replace(",", ""))
    assert fits == 2048 * 2**20 // 8784
    assert prepare_job_request(session, {**body, "training": {**body["training"], "eval_batch_size": fits}})


def test_the_parameter_and_epoch_limits_state_the_value_and_the_limit(session):
    huge = {**MLP, "model": {"layers": [{"type": "affine", "units": 20_000}, {"type": "relu"},
                                        {"type": "affine", "units": 20_000}, {"type": "relu"},
                                        {"type": "affine", "units": 10}]}}
    assert re.search(r"has 401,5\d\d,\d{3} parameters, more than the 100,000,000 allowed",
                     refused(session, huge)["model"])
    epochs = refused(session, {**MLP, "training": {"epochs": 20_000}})["training.epochs"]
    assert "20000" in epochs and "10000" in epochs


def test_over_http_the_bound_is_a_problem_naming_the_field(tmp_path):
    settings = Settings(data_dir=tmp_path, max_checkpoint_mb=1)
    upgrade(settings.effective_database_url)
    app = create_app({"TESTING": True, "DLJOBS_SETTINGS": settings,
                      "DLJOBS_ENQUEUE": lambda job_id: None, "DLJOBS_BROKER_CHECK": lambda: None})
    wide = {**MLP, "model": {"layers": [{"type": "affine", "units": 2048}, {"type": "relu"},
                                        {"type": "affine", "units": 10}]}}
    answer = post_json(app, "/api/v1/jobs", wide)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.mimetype == "application/problem+json"
    errors = {e["field"]: e for e in answer.get_json()["errors"]}
    assert "1 MiB allowed" in str(errors["model"])


def post_json(app, path, body):
    """The one HTTP call of this module, as an admin."""
    return testsupport.admin_test_client(app).post(path, json=body)


def test_the_56m_parameter_mlp_that_died_as_worker_lost_is_refused_at_submission(session):
    """The issue's case: 56M parameters, adam, float64: a 1.3 GB checkpoint that could not be stored."""
    body = {**MLP, "model": {"layers": [{"type": "affine", "units": 7_450}, {"type": "relu"},
                                        {"type": "affine", "units": 7_450}, {"type": "relu"},
                                        {"type": "affine", "units": 10}]}}
    message = refused(session, body)["model"]  # the default DLJOBS_MAX_CHECKPOINT_MB
    assert "56,068,710 parameters" in message and "1,283.3 MiB" in message and "1,024 MiB allowed" in message
