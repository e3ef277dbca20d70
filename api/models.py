"""A finished job's model: download it, or predict with it.

``GET /jobs/<id>/model`` answers the stored ``.npz`` (weights, preprocessing
statistics and the spec); ``POST /jobs/<id>/predict`` takes samples as JSON
``{"inputs": [...]}`` or as an ``.npz`` (form field ``file``, or the raw bytes) and
answers classes and probabilities from one forward pass of the cached model
(``api.model_cache``).
"""

from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, jsonify, request

from api.context import db, session_factory
from api.documentation import (
    JOB_CONFLICT,
    NPZ_UPLOAD,
    UNKNOWN_JOB,
    documented,
    json_content,
    ok,
    problem,
)
from api.lookups import get_job
from api.model_cache import loaded_model
from api.problems import Problem, error_item, validation_problem
from api.requests import read_json_body
from api.uploads import NPZ_MEDIA_TYPES, read_npz_array
from dlcore.errors import ConfigError, SpecError
from dljobs import artifacts
from dljobs.lifecycle import has_model

bp = Blueprint("models", __name__)

MAX_PREDICT_SAMPLES = 10_000

def model_artifact(job):
    """The job's stored model artifact: a 409 before the job has one, a 404 if it is gone."""
    if not has_model(job.status, job.stop_reason, job.stopped_epoch):
        raise Problem(409, "No model yet", f"job {job.id} is {job.status}; a model exists "
                      "once it has succeeded (or stopped at its max_runtime_s)",
                      [error_item("job_id", f"job is {job.status}")])
    artifact = artifacts.model_artifact(db(), job.id)
    if artifact is None:
        raise Problem(404, "Model not found", f"job {job.id} has no stored model",
                      [error_item("job_id", "no model artifact")])
    return artifact


@bp.get("/jobs/<job_id>/model")
@documented("downloadModel", "The trained model (.npz)",
            responses={"200": {"description": "The model",
                               "content": {"application/octet-stream":
                                           {"schema": {"type": "string"}}}},
                       "404": UNKNOWN_JOB, "409": JOB_CONFLICT})
def download_model(job_id: str):
    """The trained model as ``.npz`` (weights, preprocessing statistics and the spec).

    Streamed chunk by chunk, each read in its own short session: a model of a gigabyte is
    never whole in the API's memory, and no transaction stays open while a client reads.
    """
    artifact = model_artifact(get_job(job_id))
    resp = Response(artifacts.iter_chunks(session_factory(), artifact), mimetype="application/octet-stream")
    resp.headers["Content-Disposition"] = f'attachment; filename="{job_id}.npz"'
    resp.headers["Content-Length"] = str(int(artifact.size_bytes))
    return resp


def inputs_from_request(sample_size: int) -> tuple[np.ndarray, str]:
    """The samples to predict and the request field they came from."""
    upload = request.files.get("file")
    content_type = (request.mimetype or "").lower()
    if upload is not None or content_type in NPZ_MEDIA_TYPES:
        field = "file"
        raw = upload.read() if upload is not None else request.get_data()
        return read_npz_array(raw, field, sample_size, MAX_PREDICT_SAMPLES), field
    if content_type == "multipart/form-data":  # the document's required part is missing
        raise Problem(400, "Missing form part", "file: required in a multipart request",
                      [error_item("file", "required: send the samples as an .npz in the form "
                                  "field 'file', or send JSON {\"inputs\": [...]}")])
    body = read_json_body()
    if "inputs" not in body:
        raise Problem(422, "Bad inputs", "inputs: required",
                      [error_item("inputs", "required: a list of samples")])
    extra = sorted(set(body) - {"inputs"})
    if extra:
        raise Problem(422, "Bad inputs", f"{extra[0]}: unknown key",
                      [error_item(extra[0], "unknown key (allowed: inputs)")])
    try:
        array = np.asarray(body["inputs"], dtype=np.float64)
    except (ValueError, TypeError, OverflowError):  # ragged, not numbers, beyond float64
        raise Problem(422, "Bad inputs", "inputs: not a rectangular array of numbers",
                      [error_item("inputs", "must be a rectangular nested list of numbers")]
                      ) from None
    return array, "inputs"


@bp.post("/jobs/<job_id>/predict")
@documented("predict", "Predict classes of samples",
            body={**json_content("PredictRequest"), **NPZ_UPLOAD},
            responses={"200": ok("Predictions", "Prediction"),
                       "400": problem("Malformed request, or no multipart part 'file'"),
                       "404": UNKNOWN_JOB, "409": JOB_CONFLICT,
                       "413": problem("Larger than DLJOBS_MAX_UPLOAD_BYTES"),
                       "422": problem("Wrong shape (the expected one named)")})
def predict(job_id: str):
    """Class predictions and probabilities for samples shaped like the dataset's."""
    job = get_job(job_id)
    model = loaded_model(job.id, model_artifact(job), session_factory())
    sample_shape = tuple(int(d) for d in model.sample_shape)
    x, field = inputs_from_request(int(np.prod(sample_shape)))
    if x.dtype.kind not in "biuf":
        raise Problem(422, "Bad inputs", f"{field}: must hold numbers",
                      [error_item(field, f"must hold numbers, got dtype {x.dtype}")])
    if x.shape == sample_shape:
        x = x[None]
    expected = "(N, " + ", ".join(str(d) for d in sample_shape) + ")"
    if x.ndim != len(sample_shape) + 1 or tuple(x.shape[1:]) != sample_shape or x.shape[0] < 1:
        message = f"expected shape {expected}, got {tuple(x.shape)}"
        raise Problem(422, "Wrong input shape", f"{field}: {message}",
                      [error_item(field, message)])
    if x.shape[0] > MAX_PREDICT_SAMPLES:
        message = f"at most {MAX_PREDICT_SAMPLES} samples per request, got {x.shape[0]}"
        raise Problem(422, "Too many samples", f"{field}: {message}", [error_item(field, message)])
    if not np.all(np.isfinite(x)):
        raise Problem(422, "Bad inputs", f"{field}: holds NaN or infinity",
                      [error_item(field, "must hold finite numbers only")])
    try:
        scores = model.scores(x)  # one forward pass, as predict and predict_proba do
        predictions = np.argmax(scores, axis=1).reshape(-1)
        probabilities = np.asarray(model.loss.probabilities(scores))
    except (ConfigError, SpecError) as exc:  # the model refused the samples
        raise validation_problem(exc, title="Bad inputs") from None
    if not np.all(np.isfinite(probabilities)):
        # JSON has no NaN: values this far from the training data overflow the model.
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(probabilities))[0]})
        message = (f"the model's output overflows (not finite) for sample(s) {bad[:10]}: "
                   f"values up to {float(np.max(np.abs(x))):.3g} are far outside the "
                   "range it was trained on")
        raise Problem(422, "Bad inputs", f"{field}: {message}", [error_item(field, message)])
    return jsonify({
        "predictions": [int(p) for p in predictions],
        "probabilities": probabilities.astype(float).tolist(),
    })
