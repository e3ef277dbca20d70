"""Datasets: upload an ``.npz`` (size-limited, checked), list and look at them.

The upload is a multipart form with the file in ``file`` (and an optional
``name``), or the raw bytes with ``Content-Type: application/octet-stream`` and
``?name=``.  ``dlcore.datasets.npz.inspect_npz`` reads it with
``allow_pickle=False`` and checks shapes, dtypes, NaN and labels; the blob is stored
in the database so every worker machine reaches it.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, jsonify, request, url_for

from api.context import db
from api.documentation import NPZ_UPLOAD, documented, ok, problem
from api.lookups import get_dataset
from api.problems import Problem, error_item, validation_problem
from api.serializers import dataset_answer
from api.uploads import MAX_EXPANSION, NPZ_MEDIA_TYPES, check_expansion
from dlcore.datasets.npz import inspect_npz
from dlcore.errors import ConfigError, SpecError
from dljobs import queries

bp = Blueprint("datasets", __name__)

#: The most classes an uploaded data set may have (the largest label + 1).
MAX_CLASSES = 100_000

#: Media types of a dataset upload sent as the raw bytes (a zip is an ``.npz`` too).
DATASET_MEDIA_TYPES = (*NPZ_MEDIA_TYPES, "application/zip")


def _upload() -> tuple[bytes, str | None, str]:
    """(bytes, name, field) of the uploaded file."""
    upload = request.files.get("file")
    if upload is not None:
        name = request.form.get("name") or request.args.get("name") or upload.filename
        return upload.read(), name, "file"
    if request.files:
        other = next(iter(request.files))
        raise Problem(422, "Bad upload", "the file must be sent in the form field 'file'",
                      [error_item(other, "unexpected form field; send the .npz as 'file'")])
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


@bp.post("/datasets")
@documented("uploadDataset", "Upload an .npz dataset", body=NPZ_UPLOAD,
            responses={"201": ok("Stored", "DatasetInfo"),
                       "400": problem("A name that cannot be stored"),
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
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit:
        check_expansion(raw, field, MAX_EXPANSION * int(limit))
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
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    resp = jsonify(dataset_answer(row))
    resp.status_code = 201
    resp.headers["Location"] = url_for("datasets.show_dataset", dataset_id=row.id)
    return resp


@bp.get("/datasets")
@documented("listDatasets", "Uploaded datasets",
            responses={"200": ok("Datasets", "DatasetList")})
def list_datasets():
    return jsonify({"datasets": [dataset_answer(r) for r in queries.datasets(db())]})


@bp.get("/datasets/<dataset_id>")
@documented("getDataset", "One dataset",
            responses={"200": ok("The dataset", "DatasetInfo"),
                       "404": problem("Unknown dataset")})
def show_dataset(dataset_id: str):
    return jsonify(dataset_answer(get_dataset(dataset_id)))
