"""The JSON Schema of a whole job spec, composed from every registered component's schema.

Each component contributes ``Config.model_json_schema()`` plus a ``type`` constant;
a section is a ``oneOf`` over its group's components, discriminated on ``type``.
Nested ``$defs`` of component schemas are hoisted to the top under prefixed names.
"""

from __future__ import annotations

import copy
from typing import Any

from dlcore.augmentation import AUGMENTATIONS
from dlcore.errors import ConfigError
from dlcore.registry import default_registry
from dlcore.spec.sections import (
    DEFAULT_COMPONENTS,
    RUN_LENGTH_PARAMS,
    SPEC_VERSION,
    DatasetCommon,
    Diagnostics,
    Training,
)


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/"):
                out[k] = "#/$defs/" + renames.get(v[len("#/$defs/"):], v[len("#/$defs/"):])
            else:
                out[k] = _rewrite_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _hoist(schema: dict, prefix: str, defs: dict) -> dict:
    """Move ``schema``'s ``$defs`` into ``defs`` under ``prefix.`` names and fix the references."""
    schema = copy.deepcopy(schema)
    local = schema.pop("$defs", {})
    renames = {name: f"{prefix}.{name}" for name in local}
    for name, sub in local.items():
        defs[renames[name]] = _rewrite_refs(sub, renames)
    return _rewrite_refs(schema, renames)


def _component_def(group: str, name: str, cls, defs: dict, discriminator: str = "type", extra: dict | None = None) -> str:
    key = f"{group}.{name}"
    schema = _hoist(cls.Config.model_json_schema(), key, defs)
    props = {discriminator: {"const": name}, **schema.get("properties", {}), **(extra or {})}
    required = [discriminator, *schema.get("required", [])]
    defs[key] = {
        "title": name,
        "description": getattr(cls, "summary", "") or schema.get("description", ""),
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    return key


def _group_oneof(registry, groups: tuple[str, ...], defs: dict, discriminator: str = "type", extra: dict | None = None) -> dict:
    refs = []
    for group in groups:
        for name in registry.names(group):
            try:
                cls = registry.get(group, name)
            except ConfigError:  # a plugin that fails to load is listed by the registry, not here
                continue
            refs.append({"$ref": f"#/$defs/{_component_def(group, name, cls, defs, discriminator, extra)}"})
    return {"oneOf": refs} if refs else {"type": "object"}


def _augmentations(defs: dict) -> dict:

    refs = [{"$ref": f"#/$defs/{_component_def('augmentations', name, cls, defs)}"} for name, cls in sorted(AUGMENTATIONS.items())]
    return {"oneOf": refs}


def _run_length_optional(defs: dict) -> None:
    """A schedule may leave out ``t_max``: validation fills in ``training.epochs`` (see validate)."""
    for key, definition in defs.items():
        if not key.startswith("schedules."):
            continue
        for param in RUN_LENGTH_PARAMS:
            if param in definition.get("required", []):
                definition["required"] = [r for r in definition["required"] if r != param]
                prop = definition["properties"][param]
                prop["description"] = (prop.get("description", "") + " Default: training.epochs.").strip()


def _section(schema_cls, defs: dict, key: str) -> dict:
    defs[key] = _hoist(schema_cls.model_json_schema(), key, defs)
    return {"$ref": f"#/$defs/{key}"}


def job_spec_json_schema(registry=None) -> dict:
    """JSON Schema (draft 2020-12) of a job spec, for OpenAPI and the docs."""

    registry = registry or default_registry()
    defs: dict = {}
    common = _hoist(DatasetCommon.model_json_schema(), "dataset_common", defs)["properties"]
    dataset_extra = {
        **common,
        "preprocess": {"type": "array", "items": {"$ref": "#/$defs/preprocessor"}, "default": []},
        "augment": {
            "type": "array",
            "default": [],
            "items": _augmentations(defs),
            "description": "Image augmentations applied to training batches: flip (horizontal), crop (pad, random crop).",
        },
    }
    defs["preprocessor"] = _group_oneof(registry, ("preprocessors",), defs)
    defs["layer"] = _group_oneof(registry, ("layers", "activations"), defs)
    model = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"layers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}}},
                "required": ["layers"],
                "additionalProperties": False,
            },
            _group_oneof(registry, ("architectures",), defs, discriminator="architecture"),
        ]
    }
    properties = {
        "spec_version": {"const": SPEC_VERSION, "default": SPEC_VERSION},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "default": "job"},
        "dataset": _group_oneof(registry, ("datasets",), defs, extra=dataset_extra),
        "model": model,
        "init": {**_group_oneof(registry, ("initializers",), defs), "default": DEFAULT_COMPONENTS["init"]},
        "loss": {**_group_oneof(registry, ("losses",), defs), "default": DEFAULT_COMPONENTS["loss"]},
        "regularization": {"type": "array", "items": _group_oneof(registry, ("regularizers",), defs), "default": []},
        "optimizer": {**_group_oneof(registry, ("optimizers",), defs), "default": DEFAULT_COMPONENTS["optimizer"]},
        "schedule": {**_group_oneof(registry, ("schedules",), defs), "default": DEFAULT_COMPONENTS["schedule"]},
        "training": _section(Training, defs, "training"),
        "diagnostics": _section(Diagnostics, defs, "diagnostics"),
    }
    _run_length_optional(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dljobs job spec",
        "type": "object",
        "properties": properties,
        "required": ["dataset", "model"],
        "additionalProperties": False,
        "$defs": defs,
    }
