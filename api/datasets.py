"""Datasets: upload an ``.npz`` (size-limited, checked), list and look at them.

The upload is a multipart form with the file in ``file`` (and an optional
``name``), or the raw bytes with ``Content-Type: application/octet-stream`` and
``?name=``.  ``dlcore.datasets.npz.inspect_npz`` reads it with
``allow_pickle=False`` and checks shapes, dtypes, NaN and labels; the blob is stored
in the database so every worker machine reaches it.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import defer

from api.context import db
from api.problems import Problem, error_item, validation_problem
from api.serializers import dataset_answer
from dlcore.errors import ConfigError, SpecError

bp = Blueprint("datasets", __name__)


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
    if request.mimetype in ("application/octet-stream", "application/x-npz",
                            "application/zip"):
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
def upload_dataset():
    raw, name, field = _upload()
    from dlcore.datasets.npz import inspect_npz
    from dljobs.db.models import Dataset

    if not raw:
        raise Problem(422, "Bad upload", f"{field}: empty file", [error_item(field, "empty file")])
    try:
        meta = inspect_npz(raw)
    except (ConfigError, SpecError) as exc:
        raise validation_problem(_as_upload_errors(exc, field), title="Invalid dataset") from None
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file: the client's error)
        raise Problem(422, "Invalid dataset", f"{field}: not a readable .npz archive",
                      [error_item(field, f"not a readable .npz archive ({type(exc).__name__})")]
                      ) from None
    if name is not None:
        name = str(name)[:200]
    row = Dataset(
        name=name,
        sample_shape=[int(d) for d in meta["sample_shape"]],
        num_classes=int(meta["num_classes"]),
        n_samples=int(meta["n_samples"]),
        size_bytes=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        blob=raw,
    )
    session = db()
    session.add(row)
    session.commit()
    resp = jsonify(dataset_answer(row))
    resp.status_code = 201
    resp.headers["Location"] = url_for("datasets.show_dataset", dataset_id=row.id)
    return resp


@bp.get("/datasets")
def list_datasets():
    from dljobs.db.models import Dataset

    rows = db().execute(select(Dataset).options(defer(Dataset.blob))
                        .order_by(Dataset.created_at.desc(), Dataset.id)).scalars()
    return jsonify({"datasets": [dataset_answer(r) for r in rows]})


@bp.get("/datasets/<dataset_id>")
def show_dataset(dataset_id: str):
    from dljobs.db.models import Dataset

    row = db().get(Dataset, dataset_id) if len(dataset_id) <= 64 else None
    if row is None:
        raise Problem(404, "Dataset not found", f"there is no dataset {dataset_id!r}",
                      [error_item("dataset_id", f"unknown dataset {dataset_id!r}")])
    return jsonify(dataset_answer(row))
