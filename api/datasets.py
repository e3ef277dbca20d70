"""Datasets: upload an ``.npz`` (size-limited, checked), list, look at and delete them.

The upload is a multipart form with the file in ``file`` (and an optional
``name``), or the raw bytes with ``Content-Type: application/octet-stream`` and
``?name=``.  ``dlcore.datasets.npz.inspect_npz`` reads it with
``allow_pickle=False`` and checks shapes, dtypes, NaN and labels; the blob is stored
in the database so every worker machine reaches it.  The same bytes uploaded again
answer the dataset already stored (200) instead of a copy (201): a dataset is
known by its SHA-256.  A dataset an active job trains on cannot be deleted (409).
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from api.context import db
from api.documentation import NPZ_UPLOAD, documented, ok, problem
from api.lookups import caller, get_dataset
from api.problems import Problem, error_item, validation_problem
from api.serializers import dataset_answer
from api.uploads import (
    MAX_EXPANSION,
    NPZ_MEDIA_TYPES,
    check_expansion,
    check_members,
    not_npz_reason,
)
from dlcore.datasets.npz import inspect_npz
from dlcore.errors import ConfigError, SpecError
from dljobs import queries
from dljobs.lifecycle import ACTIVE, STATUSES

bp = Blueprint("datasets", __name__)

#: The most classes an uploaded data set may have (the largest label + 1).
MAX_CLASSES = 100_000

#: Media types of a dataset upload sent as the raw bytes (a zip is an ``.npz`` too).
DATASET_MEDIA_TYPES = (*NPZ_MEDIA_TYPES, "application/zip")

UNKNOWN_DATASET = problem("Unknown dataset (or another owner's)")

#: The statuses in which a job still reads its dataset, in lifecycle order, for the document.
ACTIVE_NAMES = ", ".join(status.value for status in STATUSES if status in ACTIVE)


def _upload() -> tuple[bytes, str | None, str]:
    """(bytes, name, field) of the uploaded file."""
    upload = request.files.get("file")
    if upload is not None:
        name = request.form.get("name") or request.args.get("name") or upload.filename
        return upload.read(), name, "file"
    if request.mimetype == "multipart/form-data":  # the document's required part is missing
        others = ", ".join(sorted(request.files)) or "none"
        raise Problem(400, "Missing form part", "file: required (the .npz to upload); "
                      f"parts sent: {others}",
                      [error_item("file", "required multipart part: the .npz to upload")])
    if request.mimetype in DATASET_MEDIA_TYPES:
        return request.get_data(), request.args.get("name"), "body"
    raise Problem(415, "Unsupported Media Type",
                  "send the .npz as multipart/form-data field 'file' or as "
                  "application/octet-stream",
                  [error_item("file", "required: the .npz to upload")])


def _as_upload_errors(exc: ConfigError | SpecError, field: str) -> SpecError:
    """inspect_npz names fields as in a spec (``dataset.x``); here the file is at fault."""
    errors = exc.errors if isinstance(exc, SpecError) else [exc]
    out = []
    for err in errors:
        name = err.field or ""
        if name == "dataset" or name == "":
            name = field
        elif name.startswith("dataset."):
            name = field + name[len("dataset"):]
        out.append(ConfigError(name, err.message))
    return SpecError(out)


def _dataset_answer(row, status: int):
    resp = jsonify(dataset_answer(row))
    resp.status_code = status
    resp.headers["Location"] = url_for("datasets.show_dataset", dataset_id=row.id)
    return resp


@bp.post("/datasets")
@documented("uploadDataset", "Upload an .npz dataset", body=NPZ_UPLOAD,
            responses={"201": ok("Stored", "DatasetInfo"),
                       "200": ok("The same bytes were uploaded before: that dataset, as it "
                                 "was stored (its name too)", "DatasetInfo"),
                       "400": problem("A name that cannot be stored, or no multipart part "
                                      "'file'"),
                       "413": problem("Larger than DLJOBS_MAX_UPLOAD_BYTES, or arrays over "
                                      f"{MAX_EXPANSION} times that once loaded"),
                       "415": problem("Not an upload"),
                       "422": problem("Invalid or pickled .npz")})
def upload_dataset():
    raw, name, field = _upload()
    if not raw:
        raise Problem(422, "Bad upload", f"{field}: empty file", [error_item(field, "empty file")])
    if name is not None:
        name = str(name)[:200]
        if "\x00" in name:
            raise Problem(400, "Bad upload", "name: must not contain the NUL character",
                          [error_item("name", "must not contain the NUL character (\\u0000)")])
    sha256 = hashlib.sha256(raw).hexdigest()
    existing = queries.dataset_with_sha256(db(), sha256, seen_by=caller())
    if existing is not None:  # already checked when it was stored
        return _dataset_answer(existing, 200)
    reason = not_npz_reason(raw)
    if reason:
        raise Problem(422, "Invalid dataset", f"{field}: {reason}", [error_item(field, reason)])
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit:
        check_expansion(raw, field, MAX_EXPANSION * int(limit))
    check_members(raw, field)
    try:
        meta = inspect_npz(raw)
    except (ConfigError, SpecError) as exc:
        raise validation_problem(_as_upload_errors(exc, field), title="Invalid dataset") from None
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file: the client's error)
        raise Problem(422, "Invalid dataset", f"{field}: not a readable .npz archive",
                      [error_item(field, f"not a readable .npz archive ({type(exc).__name__})")]
                      ) from None
    classes = int(meta["num_classes"])
    if not 2 <= classes <= MAX_CLASSES:
        message = (f"labels give {classes} class{'es' if classes != 1 else ''}; a data set needs "
                   f"2 to {MAX_CLASSES} classes (labels 0 to C-1)")
        raise Problem(422, "Invalid dataset", f"{field}.y: {message}",
                      [error_item(f"{field}.y", message)])
    row = queries.add_dataset(
        db(), raw, name,
        sample_shape=[int(d) for d in meta["sample_shape"]],
        num_classes=classes,
        n_samples=int(meta["n_samples"]),
        sha256=sha256,
        owner=caller().owner,
    )
    return _dataset_answer(row, 201)


@bp.get("/datasets")
@documented("listDatasets", "Uploaded datasets",
            responses={"200": ok("Datasets", "DatasetList")})
def list_datasets():
    return jsonify({"datasets": [dataset_answer(r) for r in queries.datasets(db(), seen_by=caller())]})


@bp.get("/datasets/<dataset_id>")
@documented("getDataset", "One dataset",
            responses={"200": ok("The dataset", "DatasetInfo"), "404": UNKNOWN_DATASET})
def show_dataset(dataset_id: str):
    return jsonify(dataset_answer(get_dataset(dataset_id)))


def _in_use(dataset_id: str, job_ids: list[str]) -> Problem:
    names = ", ".join(job_ids[:5]) + (f" and {len(job_ids) - 5} more" if len(job_ids) > 5 else "")
    return Problem(409, "Dataset in use",
                   f"dataset {dataset_id} is the data of active job(s) {names}; wait for them "
                   "or cancel them first",
                   [error_item("dataset_id", f"active job(s) {names} train on it")])


@bp.delete("/datasets/<dataset_id>")
@documented("deleteDataset", "Delete a dataset no active job uses",
            responses={"204": {"description": "Deleted"}, "404": UNKNOWN_DATASET,
                       "409": problem(f"A job that is {ACTIVE_NAMES} trains on it; "
                                      "the jobs are named")})
def delete_dataset(dataset_id: str):
    """Delete a dataset; a 409 naming the active jobs that train on it.

    Finished jobs keep its id (their answers still say what they trained on); a rerun
    of one is a 422 naming the unknown dataset.
    """
    get_dataset(dataset_id)
    users = queries.jobs_using_dataset(db(), dataset_id)
    if users:
        raise _in_use(dataset_id, users)
    if not queries.delete_dataset(db(), dataset_id):
        users = queries.jobs_using_dataset(db(), dataset_id)
        if users:  # a job on it was submitted since the check above
            raise _in_use(dataset_id, users)
        get_dataset(dataset_id)  # deleted meanwhile by another request: a 404
    return Response(status=204)
