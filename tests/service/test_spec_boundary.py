"""The spec boundary (dljobs/specs.py): a request becomes a validated dlcore spec plus typed references.

Also: a spec is validated exactly once on submit and once on the worker, counted through
a real submission (the Flask app) and a real worker run (run_job with dlcore's trainer).
"""

from __future__ import annotations

import hashlib
import io
import sys
from unittest import mock

import numpy as np
import pytest

from api import create_app
from dlcore.errors import SpecError
from dlcore.spec import ValidatedSpec, job_spec_json_schema
from dljobs import artifacts, jobstore
from dljobs.db.migrate import upgrade
from dljobs.db.models import Dataset, Job
from dljobs.db.session import session_factory
from dljobs.runner import run_job
from dljobs.settings import Settings
from dljobs.specs import (
    DEFAULT_MAX_ATTEMPTS,
    JobRefs,
    job_request_json_schema,
    offline_spec,
    prepare_job_request,
    request_of,
    take_service_fields,
)

MLP = {
    "name": "digits-mlp",
    "dataset": {"type": "digits"},
    "model": {"layers": [{"type": "flatten"}, {"type": "affine", "units": 16}, {"type": "relu"},
                         {"type": "affine", "units": 10}]},
    "optimizer": {"type": "sgd", "lr": 0.01},
    "training": {"epochs": 1, "batch_size": 32, "seed": 0},
}


def _copy(spec):
    import copy

    return copy.deepcopy(spec)


@pytest.fixture
def settings(tmp_path):
    s = Settings(data_dir=tmp_path, progress_interval_s=0.05)
    upgrade(s.effective_database_url)
    return s


@pytest.fixture
def session(settings):
    with session_factory(settings)() as s:
        yield s


def _dataset(session, x, y) -> str:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    blob = buf.getvalue()
    row = Dataset(name="d", sample_shape=list(x.shape[1:]), num_classes=int(y.max()) + 1, n_samples=len(x),
                  size_bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest(), blob=blob)
    session.add(row)
    session.commit()
    return row.id


def _finished_job_with_model(session, spec=MLP) -> str:
    from dlcore.spec import build, infer, validate

    validated = validate(spec)
    job = jobstore.create_job(session, validated, infer(validated), "source")
    job.status = "succeeded"
    blob = build(validated).to_bytes()
    artifacts.add_complete_artifact(session, job.id, "model", blob, iteration=0)
    session.commit()
    return job.id


def _fields(exc: SpecError) -> dict[str, str]:
    return {e.field: e.message for e in exc.errors}


# ----------------------------------------------------------------- taking fields out


def test_the_service_fields_are_taken_out_of_a_private_copy():
    body = _copy(MLP)
    body["dataset"] = {"type": "npz", "dataset_id": "d1", "val_fraction": 0.3}
    body["training"].update(warm_start="j1", max_attempts=5)
    spec, fields = take_service_fields(body)
    assert (fields.dataset_id, fields.warm_start, fields.max_attempts, fields.npz) == ("d1", "j1", 5, True)
    assert spec["dataset"] == {"type": "npz", "val_fraction": 0.3}
    assert "warm_start" not in spec["training"] and "max_attempts" not in spec["training"]
    assert body["dataset"]["dataset_id"] == "d1" and body["training"]["max_attempts"] == 5  # untouched
    # a dataset_id under another dataset type stays for dlcore to refuse as an unknown key
    other, fields = take_service_fields({**MLP, "dataset": {"type": "digits", "dataset_id": "d1"}})
    assert other["dataset"]["dataset_id"] == "d1" and fields.dataset_id is None


def test_a_plain_request_becomes_a_validated_spec_with_default_references(session):
    prepared = prepare_job_request(session, MLP)
    assert isinstance(prepared.spec, ValidatedSpec)
    assert prepared.refs == JobRefs(None, None, DEFAULT_MAX_ATTEMPTS)
    assert prepared.summary["total_params"] == 64 * 16 + 16 + 16 * 10 + 10
    assert prepared.spec["training"]["epochs"] == 1 and "max_attempts" not in prepared.spec["training"]


def test_an_uploaded_dataset_becomes_a_reference_and_the_spec_describes_its_arrays(session):
    x, y = np.zeros((6, 1, 8, 8)), np.array([0, 1, 2, 0, 1, 2])
    dataset_id = _dataset(session, x, y)
    body = {**_copy(MLP), "dataset": {"type": "npz", "dataset_id": dataset_id}}
    body["model"]["layers"][-1]["units"] = 3
    body["training"]["max_attempts"] = 7
    prepared = prepare_job_request(session, body)
    assert prepared.refs == JobRefs(dataset_id, None, 7)
    dataset = prepared.spec["dataset"]
    assert dataset["sample_shape"] == [1, 8, 8] and dataset["num_classes"] == 3 and dataset["path"] is None
    assert "dataset_id" not in dataset


def test_every_problem_names_the_field_as_the_request_wrote_it(session):
    body = {**_copy(MLP), "dataset": {"type": "npz", "dataset_id": "nope"}}
    body["training"].update(warm_start="no-such-job", max_attempts=0)
    with pytest.raises(SpecError) as info:
        prepare_job_request(session, body)
    fields = _fields(info.value)
    assert set(fields) == {"dataset.dataset_id", "training.warm_start", "training.max_attempts"}
    assert "unknown dataset 'nope'" in fields["dataset.dataset_id"]
    assert "not a job with a trained model" in fields["training.warm_start"]
    for bad in (True, 1.5, "3", 101):
        with pytest.raises(SpecError) as info:
            prepare_job_request(session, {**MLP, "training": {"max_attempts": bad}})
        assert set(_fields(info.value)) == {"training.max_attempts"}
    with pytest.raises(SpecError) as info:
        prepare_job_request(session, {**MLP, "dataset": {"type": "npz", "path": "/etc/passwd"}})
    assert set(_fields(info.value)) == {"dataset.path", "dataset.dataset_id"}
    with pytest.raises(SpecError) as info:  # dlcore's own errors come through unchanged
        prepare_job_request(session, {**MLP, "optimizer": {"type": "sgd", "lr": -1}})
    assert "optimizer.lr" in _fields(info.value)
    with pytest.raises(SpecError) as info:  # and in the same answer as the service's
        prepare_job_request(session, {**MLP, "optimizer": {"type": "sgd", "lr": -1},
                                      "training": {"warm_start": "no-such-job"}})
    assert {"optimizer.lr", "training.warm_start"} <= set(_fields(info.value))


def test_a_warm_start_must_be_a_finished_job_with_a_model_of_fitting_layers(session):
    source = _finished_job_with_model(session)
    body = _copy(MLP)
    body["training"]["warm_start"] = source
    assert prepare_job_request(session, body).refs.warm_start_job_id == source
    wider = _copy(body)
    wider["model"]["layers"][1]["units"] = 32
    with pytest.raises(SpecError) as info:
        prepare_job_request(session, wider)
    message = _fields(info.value)["training.warm_start"]
    assert source in message and "layer 1 is affine [16] with 1040 parameters there" in message
    queued = jobstore.create_job(session, MLP, None).id  # no model yet
    with pytest.raises(SpecError) as info:
        prepare_job_request(session, {**MLP, "training": {"warm_start": queued}})
    assert set(_fields(info.value)) == {"training.warm_start"}


def test_a_rerun_submits_the_same_request_again(session):
    x, y = np.zeros((20, 1, 8, 8)), np.arange(20) % 10  # shaped like digits: the source's model fits
    dataset_id = _dataset(session, x, y)
    source = _finished_job_with_model(session)
    body = {**_copy(MLP), "dataset": {"type": "npz", "dataset_id": dataset_id, "val_fraction": 0.5}}
    body["training"].update(warm_start=source, max_attempts=4)
    prepared = prepare_job_request(session, body)
    job = jobstore.create_job(session, prepared.spec, prepared.summary, max_attempts=prepared.refs.max_attempts,
                              dataset_id=prepared.refs.dataset_id, warm_start_job_id=prepared.refs.warm_start_job_id)
    again = request_of(session.get(Job, job.id))
    assert again["dataset"]["dataset_id"] == dataset_id and "path" not in again["dataset"]
    assert again["training"]["warm_start"] == source and again["training"]["max_attempts"] == 4
    assert prepare_job_request(session, again) == prepared


def test_offline_spec_files_keep_their_old_fields_meaningfully():
    spec, warm = offline_spec({**MLP, "training": {"warm_start": "model.npz", "max_attempts": 2, "epochs": 1}})
    assert warm == "model.npz" and spec["training"] == {"epochs": 1}
    with pytest.raises(SpecError) as info:
        offline_spec({**MLP, "dataset": {"type": "npz", "dataset_id": "d1"}})
    assert set(_fields(info.value)) == {"dataset.dataset_id"}


def test_the_request_schema_is_dlcores_plus_the_service_fields():
    dlcore_schema, request_schema = job_spec_json_schema(), job_request_json_schema()
    training = request_schema["$defs"]["training"]["properties"]
    assert {"warm_start", "max_attempts", "priority"} <= set(training)
    assert not {"warm_start", "max_attempts", "priority"} & set(dlcore_schema["$defs"]["training"]["properties"])
    assert "dataset_id" in request_schema["$defs"]["datasets.npz"]["properties"]
    assert "dataset_id" not in dlcore_schema["$defs"]["datasets.npz"]["properties"]
    for key in ("warm_start", "max_attempts", "priority"):
        del training[key]
    del request_schema["$defs"]["datasets.npz"]["properties"]["dataset_id"]
    assert request_schema == dlcore_schema  # nothing else differs


# ------------------------------------------------------- one validation each side


def test_a_spec_is_validated_once_on_submit_and_once_on_the_worker(tmp_path, settings):
    validate_module = sys.modules["dlcore.spec.validate"]  # the package's "validate" is the function
    sent: list[str] = []
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": settings.effective_database_url,
        "DATA_DIR": str(tmp_path),
        "DLJOBS_ENQUEUE": sent.append,
        "DLJOBS_BROKER_CHECK": lambda: None,
    })
    client = app.test_client()
    from dljobs.db.session import session_factory
    from dljobs.tokens import create_token

    with session_factory(settings)() as session:  # auth is on by default: the test client is an admin
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {create_token(session, 'admin', admin=True)}"
    with mock.patch.object(validate_module, "_check", wraps=validate_module._check) as check:
        response = client.post("/api/v1/jobs", json=MLP)
        assert response.status_code == 201, response.get_json()
        assert check.call_count == 1  # the boundary validates; infer and the stored row trust it
        job_id = response.get_json()["id"]
        assert sent == [job_id]
        assert run_job(job_id, settings, host="h", pid=1) == "succeeded"  # dlcore's real trainer
        assert check.call_count == 2  # the worker validates the stored spec once; build and the trainer trust it
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "succeeded"
    model = client.get(f"/api/v1/jobs/{job_id}/model")
    assert model.status_code == 200 and model.data[:2] == b"PK"
