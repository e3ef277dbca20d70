"""The spec boundary: a job request becomes a validated dlcore spec plus typed references.

A request body is today's job spec with three fields that belong to the service, not
to dlcore (compatibility: examples, the client and scripts send them as they always did):

- ``dataset.dataset_id`` (an ``npz`` dataset): an uploaded data set, ``POST /api/v1/datasets``;
- ``training.warm_start``: the id of a finished job whose model starts this run;
- ``training.max_attempts``: attempts before a job whose worker keeps dying fails.

:func:`prepare_job_request` is the one place they are taken out.  It looks them up
(the data set exists, the warm-start job finished with a model of compatible layers),
writes what the data set's row knows into the spec the way dlcore reads an array
data set (``sample_shape``, ``num_classes``), validates the spec ONCE with dlcore and
hands back a :class:`JobRequest`: the :class:`dlcore.spec.ValidatedSpec`, its inferred
summary, and the :class:`JobRefs` stored as typed columns of the job.  The stored spec
is never rewritten after that: the worker validates it once more (its plugins may
differ) and gives the trainer the data set's arrays and the warm-start model.

Every problem is a ``ConfigError`` naming the field as the user wrote it
(``dataset.dataset_id``, ``training.warm_start``), raised together in a ``SpecError``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from dlcore.errors import ConfigError, SpecError
from dlcore.spec import ValidatedSpec, infer, job_spec_json_schema, validate
from dljobs import artifacts, queries
from dljobs.db.models import Job
from dljobs.lifecycle import DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from dljobs.settings import Settings, get_settings
from dljobs.tokens import Principal

MIB = 2**20

#: The most attempts a request may ask for.
MAX_ATTEMPTS_LIMIT = 100

_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def plausible_id(value: Any) -> bool:
    """Whether ``value`` may be a stored id (1-64 letters, digits, ``_``, ``-``).

    Anything else is "not found" without a query: PostgreSQL refuses NUL in a
    parameter, and no id holds other characters.
    """
    return isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _ID_CHARS


@dataclass(frozen=True)
class JobRefs:
    """The service's references of a job: typed columns of ``jobs``, never spec fields."""

    dataset_id: str | None = None  # an uploaded data set (the spec's dataset is npz)
    warm_start_job_id: str | None = None  # a finished job whose model starts this run
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    priority: int = DEFAULT_PRIORITY  # 0-9: the queue takes higher ones first


@dataclass(frozen=True)
class JobRequest:
    """What the boundary hands back: a spec dlcore validated, its model table, the references."""

    spec: ValidatedSpec
    summary: dict
    refs: JobRefs


@dataclass(frozen=True)
class ServiceFields:
    """The service's fields as a request wrote them (not checked yet); ``None`` when absent."""

    dataset_id: Any = None
    warm_start: Any = None
    max_attempts: Any = None
    priority: Any = None
    npz: bool = False  # the dataset is an npz one (which over HTTP needs a dataset_id)
    path: Any = None  # an npz dataset's path (refused over HTTP)


def take_service_fields(body: Any) -> tuple[Any, ServiceFields]:
    """``(spec, fields)``: a private copy of ``body`` without the service's fields, and those fields.

    Anything not shaped as expected is left in the spec for dlcore to judge (a
    ``dataset_id`` under another dataset type is dlcore's "unknown key").
    """
    if not isinstance(body, Mapping):
        return body, ServiceFields()
    spec = copy.deepcopy(dict(body))
    dataset_id = path = None
    npz = False
    dataset = spec.get("dataset")
    if isinstance(dataset, dict) and dataset.get("type") == "npz":
        npz = True
        dataset_id = dataset.pop("dataset_id", None)
        path = dataset.get("path")
    warm_start = max_attempts = priority = None
    training = spec.get("training")
    if isinstance(training, dict):
        warm_start = training.pop("warm_start", None)
        max_attempts = training.pop("max_attempts", None)
        priority = training.pop("priority", None)
    return spec, ServiceFields(dataset_id, warm_start, max_attempts, priority, npz, path)


def check_priority(value: Any, errors: list[ConfigError], field: str = "training.priority") -> int:
    """A job's priority as an int from 0 to 9 (the default when absent); a problem appended otherwise."""
    if value is None:
        return DEFAULT_PRIORITY
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_PRIORITY <= value <= MAX_PRIORITY:
        errors.append(ConfigError(field, f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}, got {value!r}"))
        return DEFAULT_PRIORITY
    return value


def check_max_attempts(value: Any, errors: list[ConfigError]) -> int:
    """``training.max_attempts`` as an int (the default when absent); a problem appended otherwise."""
    if value is None:
        return DEFAULT_MAX_ATTEMPTS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        errors.append(
            ConfigError("training.max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, got {value!r}")
        )
        return DEFAULT_MAX_ATTEMPTS
    return value


def prepare_job_request(session: Session, body: Any, *, registry=None,
                        seen_by: Principal | None = None, settings: Settings | None = None) -> JobRequest:
    """Turn a request body into a validated spec plus typed references; ``SpecError`` lists every problem.

    Inputs:
    - session: where data sets and jobs are looked up.
    - body: the parsed JSON of ``POST /api/v1/jobs`` (today's job spec).
    - registry: the dlcore registry (default: everything installed).
    - seen_by: the caller; a dataset or warm-start job of another owner is "unknown",
      the same answer as a missing one (None: the service itself, which sees all).
    - settings: where the service's size limits come from (default: the environment's).
    Returns: a :class:`JobRequest`; its ``spec`` is validated exactly once, here.
    """
    spec, fields = take_service_fields(body)
    errors: list[ConfigError] = []
    max_attempts = check_max_attempts(fields.max_attempts, errors)
    priority = check_priority(fields.priority, errors)
    dataset_id = _resolve_dataset(session, spec, fields, errors, seen_by)
    warm_start = _resolve_warm_start(session, fields.warm_start, errors, seen_by)
    try:
        validated = validate(spec, registry)
    except SpecError as exc:  # one answer lists the service's problems and dlcore's together
        # An unresolved upload leaves the npz entry without its shape: dlcore's complaint about
        # ``dataset`` is a consequence of the service's own error there, not a second problem.
        unresolved = any(e.field.startswith("dataset.") for e in errors)
        raise SpecError(
            [*errors, *(e for e in exc.errors if not (unresolved and e.field.split(".")[0].split("[")[0] == "dataset"))]
        ) from None
    if errors:
        raise SpecError(errors)
    summary = infer(validated, registry)
    check_storage_limits(summary, validated, settings or get_settings())
    if warm_start is not None:
        _check_warm_start_shapes(warm_start, summary)
    refs = JobRefs(dataset_id, None if warm_start is None else warm_start.id, max_attempts, priority)
    return JobRequest(validated, summary, refs)


def check_storage_limits(summary: dict, spec: Mapping, settings: Settings) -> None:
    """A ``SpecError`` when the job's checkpoint or one evaluation pass would exceed the service's limits.

    Both from ``infer``: the checkpoint is parameters x (1 + optimizer slots) x dtype bytes
    (``DLJOBS_MAX_CHECKPOINT_MB``); an evaluation pass is the activations of one sample x
    ``training.eval_batch_size`` (``DLJOBS_MAX_EVAL_MEMORY_MB``).  Each error states the value
    and the limit, so the fix is plain.
    """
    errors: list[ConfigError] = []
    checkpoint, limit = summary["checkpoint_bytes"], settings.max_checkpoint_mb * MIB
    if checkpoint > limit:
        training = spec["training"]
        errors.append(ConfigError(
            "model",
            f"the checkpoint would be {checkpoint / MIB:,.1f} MiB ({summary['total_params']:,} parameters x "
            f"(1 + {summary['optimizer_slots']} optimizer slots) x {_itemsize(training['dtype'])} bytes of "
            f"{training['dtype']}), more than the {settings.max_checkpoint_mb:,} MiB allowed "
            "(DLJOBS_MAX_CHECKPOINT_MB); use fewer parameters, float32 or an optimizer with fewer slots",
        ))
    evaluation, limit = summary["eval_memory_bytes"], settings.max_eval_memory_mb * MIB
    if evaluation > limit:
        batch = spec["training"]["eval_batch_size"]
        fits = max(1, limit // max(summary["activation_bytes_per_sample"], 1))
        errors.append(ConfigError(
            "training.eval_batch_size",
            f"one evaluation pass of {batch:,} samples needs {evaluation / MIB:,.1f} MiB of activations "
            f"({summary['activation_bytes_per_sample']:,} bytes per sample), more than the "
            f"{settings.max_eval_memory_mb:,} MiB allowed (DLJOBS_MAX_EVAL_MEMORY_MB); "
            f"use an eval_batch_size of at most {fits:,}",
        ))
    if errors:
        raise SpecError(errors)


def _itemsize(dtype: str) -> int:
    return int(np.dtype(dtype).itemsize)


def _resolve_dataset(session: Session, spec: dict, fields: ServiceFields, errors: list,
                     seen_by: Principal | None = None) -> str | None:
    """The uploaded data set's id, its stored shape and classes written into ``spec`` (dlcore's array form)."""
    if not fields.npz:
        return None
    if fields.path is not None:  # a stored spec (rerun) carries "path": null
        errors.append(
            ConfigError(
                "dataset.path",
                "only accepted offline; upload the file with POST /api/v1/datasets and name its dataset_id",
            )
        )
    if fields.dataset_id is None:
        errors.append(ConfigError("dataset.dataset_id", "required over HTTP: the id answered by POST /api/v1/datasets"))
        return None
    row = queries.get_dataset(session, fields.dataset_id, seen_by) if plausible_id(fields.dataset_id) else None
    if row is None:
        errors.append(ConfigError("dataset.dataset_id", f"unknown dataset {fields.dataset_id!r}"))
        return None
    spec["dataset"]["sample_shape"] = list(row.sample_shape)
    spec["dataset"]["num_classes"] = int(row.num_classes)
    return row.id


def _resolve_warm_start(session: Session, ref: Any, errors: list,
                        seen_by: Principal | None = None) -> Job | None:
    """The finished job whose model starts this run, or None (a problem appended when it is not one)."""
    if ref is None:
        return None
    job = queries.get_job(session, ref, seen_by) if plausible_id(ref) else None
    if job is None or artifacts.model_artifact(session, ref) is None:
        errors.append(
            ConfigError(
                "training.warm_start",
                f"over HTTP, the id of a finished job whose model starts this run; {ref!r} is "
                "not a job with a trained model (paths are only accepted offline)",
            )
        )
        return None
    return job


def _layer_signature(summary: dict) -> list[tuple]:
    """What must match for one model's weights to start another: input, and each layer's type, size and output."""
    return [("input", tuple(summary["input_shape"]), 0)] + [
        (layer["type"], tuple(layer["output_shape"]), int(layer["params"])) for layer in summary["layers"]
    ]


def _check_warm_start_shapes(source: Job, summary: dict) -> None:
    """A ``SpecError`` at ``training.warm_start`` when the source job's layers cannot start this model."""
    if not source.summary:
        return  # the worker's load checks every array's name and shape
    ours, theirs = _layer_signature(summary), _layer_signature(source.summary)
    if ours == theirs:
        return
    where = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    if where == 0:
        detail = f"its input is {list(theirs[0][1])}, this spec's is {list(ours[0][1])}"
    elif where >= min(len(ours), len(theirs)):
        detail = f"it has {len(theirs) - 1} layers, this spec {len(ours) - 1}"
    else:
        (t_type, t_out, t_params), (o_type, o_out, o_params) = theirs[where], ours[where]
        detail = (
            f"layer {where - 1} is {t_type} {list(t_out)} with {t_params} parameters there, "
            f"{o_type} {list(o_out)} with {o_params} here"
        )
    raise SpecError(
        [ConfigError("training.warm_start", f"job {source.id}'s model does not fit this spec's layers: {detail}")]
    )


def request_of(job: Job) -> dict:
    """The request body that submits ``job`` again (``POST /jobs/<id>/rerun``): its spec and references."""
    body = copy.deepcopy(job.spec or {})
    dataset = body.get("dataset")
    if job.dataset_id is not None and isinstance(dataset, dict):
        body["dataset"] = {k: v for k, v in dataset.items() if k not in ("path", "sample_shape", "num_classes")}
        body["dataset"]["dataset_id"] = job.dataset_id
    training = body.setdefault("training", {})
    if isinstance(training, dict):
        if job.warm_start_job_id is not None:
            training["warm_start"] = job.warm_start_job_id
        training["max_attempts"] = job.max_attempts
        training["priority"] = job.priority
    return body


def offline_spec(body: Any) -> tuple[Any, str | None]:
    """``(spec, warm_start_path)`` of a spec file for ``dljobs train`` and ``dljobs validate``.

    Spec files written before these fields left dlcore keep working: ``training.max_attempts``
    means nothing offline and is dropped; ``training.warm_start`` was a model's path and is
    returned to be loaded.  ``dataset_id`` (an upload) is a problem: offline data is a ``path``.
    """
    spec, fields = take_service_fields(body)
    errors: list[ConfigError] = []
    check_max_attempts(fields.max_attempts, errors)
    check_priority(fields.priority, errors)
    if fields.dataset_id is not None:
        errors.append(ConfigError("dataset.dataset_id", "only accepted over HTTP; offline, name the file by path"))
    if fields.warm_start is not None and not isinstance(fields.warm_start, str):
        errors.append(ConfigError("training.warm_start", "offline, the path of a saved model (.npz)"))
    if errors:
        raise SpecError(errors)
    return spec, fields.warm_start


def job_request_json_schema(registry=None) -> dict:
    """JSON Schema of ``POST /api/v1/jobs``: dlcore's job spec plus the service's fields.

    The fields are those :func:`take_service_fields` takes out, documented where a
    request writes them: ``training.warm_start``, ``training.max_attempts`` and an npz
    dataset's ``dataset_id``.
    """
    schema = copy.deepcopy(job_spec_json_schema(registry))
    defs = schema["$defs"]
    training = defs["training"]["properties"]
    training["max_attempts"] = {
        "default": DEFAULT_MAX_ATTEMPTS,
        "description": "Attempts before a job whose worker keeps dying fails.",
        "maximum": MAX_ATTEMPTS_LIMIT,
        "minimum": 1,
        "title": "Max Attempts",
        "type": "integer",
    }
    training["priority"] = {
        "default": DEFAULT_PRIORITY,
        "description": "0 (lowest) to 9: the queue starts higher ones first.",
        "maximum": MAX_PRIORITY,
        "minimum": MIN_PRIORITY,
        "title": "Priority",
        "type": "integer",
    }
    training["warm_start"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
        "description": "The id of a finished job whose model starts this run (same layer shapes). "
        "Preprocessing is fitted again on this run's data.",
        "title": "Warm Start",
    }
    npz = defs.get("datasets.npz")
    if npz is not None:
        npz["properties"]["dataset_id"] = {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "default": None,
            "description": "An uploaded data set's id (POST /api/v1/datasets); required over HTTP.",
            "title": "Dataset Id",
        }
    return schema
