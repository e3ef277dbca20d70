"""Validate a job spec: every name resolved, every parameter checked, every shape inferred.

``validate(spec)`` returns a :class:`ValidatedSpec` (the normalized spec, defaults
filled in, plus what validation learned on the way) or raises ``SpecError`` listing
every problem, each a ``ConfigError`` whose ``field`` is a dotted path into the
request (``model.layers[0].type``, ``optimizer.lr``).  ``infer``, ``build`` and the
``Trainer`` take a ``ValidatedSpec`` as it is and validate a plain mapping first, so
a spec is checked once on its way however many of them it passes through.
No data is loaded: datasets declare their sample shape and class count from
their parameters alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from dlcore.augmentation import make_augmentation
from dlcore.config import Config, did_you_mean, validation_errors
from dlcore.datasets import MAX_CLASSES, at_dataset
from dlcore.errors import ConfigError, SpecError
from dlcore.layers.sequential import Sequential, make_layer
from dlcore.layout import shape_to_internal, shape_to_public
from dlcore.registry import default_registry
from dlcore.spec.sections import (
    DATASET_COMMON_KEYS,
    DEFAULT_COMPONENTS,
    MAX_BATCH_ACTIVATION_BYTES,
    MAX_FLOPS_PER_SAMPLE,
    MAX_PARAMS,
    RUN_LENGTH_PARAMS,
    SPEC_VERSION,
    TOP_LEVEL_KEYS,
    DatasetCommon,
    Diagnostics,
    Training,
)


class ValidatedSpec(Mapping):
    """A spec that passed validation: the normalized spec (read-only) and what was learned.

    It reads like the normalized spec (``validated["training"]["epochs"]``);
    :meth:`to_dict` gives a plain, independent copy to store or to edit (an edited copy
    is a plain mapping again, validated again when it is used).

    Attributes:
    - sample_shape: public per-sample shape, ``(C, H, W)`` or ``(D,)``
    - num_classes: C
    - layer_entries: the resolved layer stack (architectures expanded)
    - rows: one ``Sequential.infer_rows`` row per top-level layer, internal shapes
    """

    __slots__ = ("_spec", "layer_entries", "num_classes", "rows", "sample_shape")

    def __init__(self, spec: dict, sample_shape: tuple[int, ...], num_classes: int, layer_entries: list[dict], rows: list[dict]):
        self._spec = spec
        self.sample_shape = sample_shape
        self.num_classes = num_classes
        self.layer_entries = layer_entries
        self.rows = rows

    def __getitem__(self, key: str) -> Any:
        return self._spec[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._spec)

    def __len__(self) -> int:
        return len(self._spec)

    def __repr__(self) -> str:
        return f"ValidatedSpec({self._spec!r})"

    def to_dict(self) -> dict:
        """The normalized spec as a new plain dict (JSON types only)."""
        return copy.deepcopy(self._spec)


class _Learned:
    """What the checks learn while they walk a spec (filled in as they go)."""

    def __init__(self) -> None:
        self.sample_shape: tuple[int, ...] | None = None  # public layout
        self.num_classes: int | None = None
        self.layer_entries: list[dict] = []
        self.rows: list[dict] = []


def validate(spec: Mapping[str, Any], registry=None) -> ValidatedSpec:
    """The validated spec (normalized, defaults filled); raises ``SpecError`` listing every problem.

    Inputs:
    - spec: a job spec (parsed JSON object); a ``ValidatedSpec`` is returned as it is.
    - registry: a :class:`dlcore.registry.Registry` (default: everything installed).
    Returns: a :class:`ValidatedSpec` with every top-level key present.
    """
    if isinstance(spec, ValidatedSpec):
        return spec
    return _check(spec, registry or default_registry())


def _check(spec: Mapping[str, Any], registry) -> ValidatedSpec:
    """Every check of a spec: the one place validation happens (tests count its calls)."""
    errors: list[ConfigError] = []
    if not isinstance(spec, Mapping):
        raise SpecError([ConfigError("body", f"a job spec is a JSON object, not {type(spec).__name__}")])
    deep = _json_too_deep(spec)
    if deep is not None:  # before anything recurses into it (deepcopy, pydantic)
        raise SpecError([ConfigError(deep, f"the spec nests lists and objects more than {MAX_JSON_DEPTH} deep here")])
    for key in spec:
        if key not in TOP_LEVEL_KEYS:
            # an empty key names no field: the error is then the body's, naming the key
            field, which = (str(key), "unknown key") if str(key) else ("body", 'unknown key ""')
            errors.append(ConfigError(field, f"{which}{did_you_mean(key, TOP_LEVEL_KEYS)} (allowed: {', '.join(TOP_LEVEL_KEYS)})"))

    out: dict[str, Any] = {}
    version = spec.get("spec_version", SPEC_VERSION)
    if version != SPEC_VERSION or isinstance(version, bool):
        errors.append(ConfigError("spec_version", f"unsupported spec_version {version!r}; this dlcore reads {SPEC_VERSION}"))
    out["spec_version"] = SPEC_VERSION
    name = spec.get("name", "job")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        errors.append(ConfigError("name", "name must be a string of 1 to 200 characters"))
    out["name"] = name

    checked = _Learned()
    out["dataset"] = _check_dataset(spec.get("dataset"), registry, errors, checked)
    out["model"] = copy.deepcopy(spec.get("model"))
    for key in ("init", "loss"):
        out[key] = _check_component(GROUP_OF[key], spec.get(key, DEFAULT_COMPONENTS[key]), key, registry, errors)
    regs = spec.get("regularization", [])
    if not isinstance(regs, list):
        errors.append(ConfigError("regularization", "regularization is a list of {\"type\": ..., \"strength\": ...}"))
        regs = []
    out["regularization"] = [
        _check_component("regularizers", r, f"regularization[{i}]", registry, errors) for i, r in enumerate(regs)
    ]
    training = _check_section(Training, spec.get("training", {}), "training", errors)
    out["optimizer"] = _check_component("optimizers", spec.get("optimizer", DEFAULT_COMPONENTS["optimizer"]), "optimizer", registry, errors)
    schedule = _fill_run_length(spec.get("schedule", DEFAULT_COMPONENTS["schedule"]), training, registry)
    out["schedule"] = _check_component("schedules", schedule, "schedule", registry, errors)
    out["training"] = training
    out["diagnostics"] = _check_section(Diagnostics, spec.get("diagnostics", {}), "diagnostics", errors)
    out["model"] = _check_model(spec.get("model"), registry, errors, checked)
    if checked.rows and training is not None:
        _check_size(checked, training, errors)

    if errors:
        raise SpecError(errors)
    return ValidatedSpec(out, checked.sample_shape, checked.num_classes, checked.layer_entries, checked.rows)



GROUP_OF = {"init": "initializers", "loss": "losses", "optimizer": "optimizers", "schedule": "schedules"}

#: One component of a group, as messages name it ("losses"[:-1] was "losse").
COMPONENT_NOUN = {
    "activations": "activation",
    "architectures": "architecture",
    "datasets": "dataset",
    "initializers": "initializer",
    "layers": "layer",
    "losses": "loss",
    "optimizers": "optimizer",
    "preprocessors": "preprocessor",
    "regularizers": "regularizer",
    "schedules": "schedule",
}


def _fill_run_length(entry: Any, training: dict | None, registry) -> Any:
    """``entry`` with a required ``t_max`` it leaves out set to ``training.epochs`` (cosine anneals over the run).

    When ``training`` is invalid (None; its errors are reported) the default epochs stand in,
    so the schedule gets no second, misleading error.
    """
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        return entry
    epochs = training["epochs"] if training is not None else Training.model_fields["epochs"].default
    try:
        fields = registry.get("schedules", entry["type"]).Config.model_fields
    except ConfigError:
        return entry  # reported by _check_component
    missing = {p: epochs for p in RUN_LENGTH_PARAMS if p in fields and fields[p].is_required() and p not in entry}
    return {**entry, **missing}


def _size(shape) -> int:
    """Elements of ``shape`` as a Python int (np.prod wraps around past 2**63: a pad of 1e9 gave a negative size)."""
    return math.prod(int(s) for s in shape)


def _check_size(checked: _Learned, training: dict, errors: list) -> None:
    """A model too large to allocate (parameters) or to run (one batch's activations) is a spec error."""

    params = sum(int(row["params"]) for row in checked.rows)
    if params > MAX_PARAMS:
        errors.append(
            ConfigError("model", f"the model has {params:,} parameters, more than the {MAX_PARAMS:,} allowed; use fewer or narrower layers")
        )
        return
    flops = sum(int(row.get("flops", 0)) for row in checked.rows)
    if flops > MAX_FLOPS_PER_SAMPLE:
        errors.append(
            ConfigError(
                "model",
                f"one sample's forward pass is {flops:,} FLOPs, more than the {MAX_FLOPS_PER_SAMPLE:,} allowed; "
                "use fewer filters, smaller inputs or more pooling",
            )
        )
    per_sample = _size(checked.sample_shape) + sum(_size(row["out_shape"]) for row in checked.rows)
    itemsize = np.dtype(training["dtype"]).itemsize
    need = per_sample * training["batch_size"] * itemsize
    if need > MAX_BATCH_ACTIVATION_BYTES:
        errors.append(
            ConfigError(
                "training.batch_size",
                f"one batch of {training['batch_size']} samples needs {need / 2**30:.1f} GiB of activations "
                f"({per_sample:,} values per sample), more than the {MAX_BATCH_ACTIVATION_BYTES / 2**30:g} GiB allowed; "
                f"use a smaller batch_size or smaller layers",
            )
        )


def _check_section(schema: type[Config], values: Any, field_name: str, errors: list) -> dict | None:
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        errors.append(ConfigError(field_name, f"{field_name} is a JSON object"))
        return None
    errs = validation_errors(schema, values)
    if errs:
        errors.extend(e.at(field_name) for e in errs)
        return None
    return schema.model_validate(dict(values)).model_dump(mode="json")


def _check_component(group: str, entry: Any, field_name: str, registry, errors: list) -> dict | None:
    """Resolve ``{"type": name, ...params}`` in ``group`` and validate its parameters."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        errors.append(ConfigError(f"{field_name}.type", f"{field_name} needs a \"type\" naming a registered {COMPONENT_NOUN.get(group, group)}"))
        return None
    params = {k: v for k, v in entry.items() if k != "type"}
    try:
        cls = registry.get(group, entry["type"])
    except ConfigError as exc:
        errors.append(exc.at(field_name))
        return None
    errs = validation_errors(cls.Config, params, cls.name or entry["type"])
    if errs:
        errors.extend(e.at(field_name) for e in errs)
        return None
    try:
        component = cls(params)
    except ConfigError as exc:  # rules across several parameters
        errors.append(exc.at(field_name))
        return None
    return {"type": entry["type"], **component.hyperparameters()}


def _check_dataset(entry: Any, registry, errors: list, checked: _Learned) -> dict | None:
    if entry is None:
        errors.append(ConfigError("dataset", "a job needs a dataset, e.g. {\"type\": \"digits\"}"))
        return None
    if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
        errors.append(ConfigError("dataset.type", "dataset needs a \"type\" naming a registered dataset"))
        return None
    common = {k: entry[k] for k in ("val_fraction", "seed") if k in entry}
    common_norm = _check_section(DatasetCommon, common, "dataset", errors)
    params = {k: v for k, v in entry.items() if k not in DATASET_COMMON_KEYS}
    norm = _check_component("datasets", {"type": entry["type"], **params}, "dataset", registry, errors)
    if norm is not None:
        try:
            ds = registry.get("datasets", entry["type"])(params)
            checked.sample_shape = tuple(int(s) for s in ds.sample_shape())
            checked.num_classes = int(ds.num_classes())
            if not 2 <= checked.num_classes <= MAX_CLASSES:  # a plugin's count; built-ins check their own
                raise ConfigError("dataset", f"{entry['type']}: {checked.num_classes} classes; a job needs 2 to {MAX_CLASSES}")
        except ConfigError as exc:
            errors.append(at_dataset(exc))
            checked.sample_shape = checked.num_classes = None
            norm = None
        else:  # a dataset that read its shape from a file (npz) writes it down: the saved model needs no data
            for key, value in (("sample_shape", list(checked.sample_shape)), ("num_classes", checked.num_classes)):
                if key in norm and norm[key] is None:
                    norm[key] = value
    preprocess = entry.get("preprocess", [])
    augment = entry.get("augment", [])
    if not isinstance(preprocess, list):
        errors.append(ConfigError("dataset.preprocess", "preprocess is a list of {\"type\": ...}"))
        preprocess = []
    if not isinstance(augment, list):
        errors.append(ConfigError("dataset.augment", "augment is a list of {\"type\": ...}"))
        augment = []
    pre_norm = [
        _check_component("preprocessors", p, f"dataset.preprocess[{i}]", registry, errors)
        for i, p in enumerate(preprocess)
    ]
    aug_norm = [
        _check_augmentation(a, f"dataset.augment[{i}]", checked.sample_shape, errors) for i, a in enumerate(augment)
    ]
    if norm is None or common_norm is None:
        return None
    return {**norm, **common_norm, "preprocess": pre_norm, "augment": aug_norm}


def _check_augmentation(entry: Any, field_name: str, sample_shape, errors: list) -> dict | None:
    """Resolve one ``dataset.augment`` entry; it needs image samples (when the shape is known)."""

    if not isinstance(entry, Mapping):
        errors.append(ConfigError(field_name, "an augmentation is {\"type\": \"flip\" | \"crop\", ...}"))
        return None
    try:
        aug = make_augmentation(dict(entry))
        if sample_shape is not None:
            aug.check_shape(sample_shape)
    except ConfigError as exc:
        errors.append(exc.at(field_name))
        return None
    config = getattr(aug, "config", None)
    if config is not None and hasattr(config, "model_dump"):
        return {"type": entry["type"], **config.model_dump(mode="json")}
    return dict(entry)


def resolve_layers(model: Any, sample_shape, num_classes, registry, errors: list) -> tuple[dict | None, list[dict]]:
    """The normalized ``model`` entry and the layer stack it stands for (architectures expanded)."""
    if not isinstance(model, Mapping):
        errors.append(ConfigError("model", "model is {\"layers\": [...]} or {\"architecture\": name, ...}"))
        return None, []
    if "architecture" in model:
        if "layers" in model:
            errors.append(ConfigError("model.layers", "give either layers or an architecture, not both"))
            return None, []
        params = {k: v for k, v in model.items() if k != "architecture"}
        errs: list[ConfigError] = []
        norm = _check_component("architectures", {"type": model["architecture"], **params}, "model", registry, errs)
        for e in errs:  # the architecture's name is under "architecture", not "type"
            errors.append(ConfigError("model.architecture", e.message) if e.field == "model.type" else e)
        if norm is None or sample_shape is None:
            return None, []
        norm = {"architecture": norm.pop("type"), **norm}
        try:
            arch = registry.get("architectures", model["architecture"])(params)
            layers = arch.layers(tuple(sample_shape), int(num_classes))
        except ConfigError as exc:
            errors.append(exc.at("model"))
            return None, []
        return norm, layers
    for key in model:
        if key != "layers":
            errors.append(ConfigError(f"model.{key}", f"unknown key{did_you_mean(key, ('layers', 'architecture'))} (allowed: layers, or architecture with its parameters)"))
    layers = model.get("layers")
    if not isinstance(layers, list) or not layers:
        errors.append(ConfigError("model.layers", "model.layers is a non-empty list of {\"type\": ..., ...}"))
        return None, []
    too_deep = _too_deep(layers, "model.layers")
    if too_deep is not None:
        errors.append(ConfigError(too_deep, f"blocks are nested more than {MAX_NESTING} deep here; flatten the model"))
        return None, []
    return {"layers": copy.deepcopy(layers)}, copy.deepcopy(layers)


#: Deepest nesting of JSON lists and objects in a spec (a model at MAX_NESTING blocks needs about 100).
MAX_JSON_DEPTH = 160


def _json_too_deep(spec: Mapping) -> str | None:
    """The path of the first value nested more than MAX_JSON_DEPTH deep, or None (iterative)."""
    stack: list[tuple[Any, str, int]] = [(spec, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return where
        if isinstance(node, Mapping):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node))
    return None


#: Deepest nesting of blocks (residual in inception in ...) a model may have; far past any real
#: network, well before Python's recursion limit in building and running it.
MAX_NESTING = 32


def _too_deep(layers: list, path: str) -> str | None:
    """The path of the first layer entry nested more than MAX_NESTING blocks deep, or None (iterative)."""
    stack = [(layers, path, 0)]
    while stack:
        entries, where, depth = stack.pop()
        if depth > MAX_NESTING:
            return where
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            if isinstance(entry.get("layers"), list):
                stack.append((entry["layers"], f"{where}[{i}].layers", depth + 1))
            branches = entry.get("branches")
            if isinstance(branches, list):
                stack.extend(
                    (branch, f"{where}[{i}].branches[{b}]", depth + 1) for b, branch in enumerate(branches) if isinstance(branch, list)
                )
    return None


def make_stack(layer_entries: list[dict], registry, errors: list):
    """Construct every top-level layer (collecting each one's error) and wrap them in a Sequential."""

    layers = []
    for i, entry in enumerate(layer_entries):
        fld = f"model.layers[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
            errors.append(ConfigError(f"{fld}.type", "a layer is {\"type\": <registered layer or activation>, ...}"))
            continue
        try:
            layers.append(make_layer(dict(entry), registry=registry, field=fld))
        except ConfigError as exc:
            errors.append(_prefixed(exc, fld))
    if len(layers) != len(layer_entries):
        return None
    return Sequential.of(layers)


def _prefixed(exc: ConfigError, prefix: str) -> ConfigError:
    return exc if exc.field.startswith("model") else exc.at(prefix)


def _check_model(model: Any, registry, errors: list, checked: _Learned) -> dict | None:
    norm, entries = resolve_layers(model, checked.sample_shape, checked.num_classes, registry, errors)
    if norm is None:
        return None
    stack_errors: list[ConfigError] = []
    stack = make_stack(entries, registry, stack_errors)
    errors.extend(stack_errors)
    if stack is None or checked.sample_shape is None:
        return norm
    try:
        rows = stack.infer_rows(shape_to_internal(checked.sample_shape))
    except ConfigError as exc:
        errors.append(exc if exc.field.startswith("model") else exc.at("model.layers"))
        return norm
    out_shape = tuple(rows[-1]["out_shape"]) if rows else ()
    if out_shape != (checked.num_classes,):
        errors.append(
            ConfigError(
                f"model.layers[{len(rows) - 1}]",
                f"the last layer outputs {list(shape_to_public(out_shape))} per sample but the dataset has "
                f"{checked.num_classes} classes: end with {{\"type\": \"affine\", \"units\": {checked.num_classes}}}",
            )
        )
    checked.layer_entries = entries
    checked.rows = rows
    return norm
