"""Datasets: upload an ``.npz`` (size-limited, checked), list and look at them.

The upload is a multipart form with the file in ``file`` (and an optional
``name``), or the raw bytes with ``Content-Type: application/octet-stream`` and
``?name=``.  ``dlcore.datasets.npz.inspect_npz`` reads it with
``allow_pickle=False`` and checks shapes, dtypes, NaN and labels; the blob is stored
in the database so every worker machine reaches it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import defer

from api.context import db
from api.jobs import plausible_id
from api.problems import Problem, error_item, validation_problem
from api.serializers import dataset_answer
from dlcore.errors import ConfigError, SpecError

bp = Blueprint("datasets", __name__)

#: An upload's arrays may take at most this many times the upload limit once
#: decompressed (``np.savez_compressed`` of real data shrinks it 2-10 times): a small
#: zip of zeros must not make the API allocate gigabytes.
MAX_EXPANSION = 16

#: The most classes an uploaded data set may have (the largest label + 1).
MAX_CLASSES = 100_000


def npy_headers(raw: bytes) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{array name: (shape, dtype)}`` of an ``.npz``, read from the headers only.

    Nothing but the few header bytes of each member is decompressed, so this costs
    nothing whatever the arrays' size.  An unreadable archive or header yields what could
    be read; the loader that follows reports the error.
    """
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                out[info.filename[:-4]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except Exception:  # noqa: BLE001, S110  (the loader that follows reports an unreadable file)
        pass
    return out


def array_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(np.prod(shape, dtype=object)) * int(dtype.itemsize)


def check_expansion(raw: bytes, field: str, limit: int) -> None:
    """A 413 problem naming ``field`` if the arrays in ``raw`` would take over ``limit`` bytes."""
    total = sum(array_bytes(*h) for h in npy_headers(raw).values())
    if total > limit:
        message = (f"its arrays take {total} bytes once loaded, more than the limit of "
                   f"{limit} bytes ({MAX_EXPANSION} x DLJOBS_MAX_UPLOAD_BYTES)")
        raise Problem(413, "Payload Too Large", f"{field}: {message}",
                      [error_item(field, message)])


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

    row = db().get(Dataset, dataset_id) if plausible_id(dataset_id) else None
    if row is None:
        raise Problem(404, "Dataset not found", f"there is no dataset {dataset_id!r}",
                      [error_item("dataset_id", f"unknown dataset {dataset_id!r}")])
    return jsonify(dataset_answer(row))
