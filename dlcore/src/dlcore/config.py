"""Typed parameter schemas: one pydantic model per component.

The schema is the single source of truth for a component's parameters: it
validates them, exports JSON Schema for the OpenAPI document and the plugin
listing, and documents defaults, bounds and descriptions.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from dlcore.errors import ConfigError


class Config(BaseModel):
    """Base of every component's parameter schema: unknown keys are errors, values are frozen,
    floats are finite (a spec is JSON, which has no Infinity or NaN; PostgreSQL refuses them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EmptyConfig(Config):
    """A component without parameters."""


def _loc_to_field(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(schema: type[Config], err: dict, field: str) -> str:
    """pydantic's message for one error, rewritten to name the parameter and show the value.

    ``Input should be less than 1`` becomes ``p should be less than 1, got 1.0``;
    ``Field required`` becomes ``t_max is required: <its description>``.
    """
    msg, kind = err["msg"], err["type"]
    name = field or "value"
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(schema.model_fields)) or "none"
        return f"unknown parameter {name!r}{did_you_mean(name, schema.model_fields)} (allowed: {allowed})"
    if kind == "missing":
        info = schema.model_fields.get(field)
        described = f": {info.description}" if info is not None and info.description else ""
        return f"{name} is required{described}"
    if msg.startswith("Input should"):
        rule = msg[len("Input ") :]
        shown = _shown(err.get("input"))
        return f"{name} {rule} ({shown})" if ", got " in rule else f"{name} {rule}, got {shown}"
    return msg


def did_you_mean(name: str, choices) -> str:
    """``", did you mean 'x'?"`` for the closest of ``choices`` to a misspelled ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def parse_config(schema: type[Config], values: Any, owner: str = "") -> Config:
    """Validate ``values`` (a mapping or an instance) against ``schema``.

    Raises ``ConfigError`` naming the first field at fault, with the component's
    name (``owner``) in the message.  ``validation_errors`` gives all of them.
    """
    errors = validation_errors(schema, values, owner)
    if errors:
        raise errors[0]
    if isinstance(values, schema):
        return values
    return schema.model_validate(dict(values or {}))


def validation_errors(schema: type[Config], values: Any, owner: str = "") -> list[ConfigError]:
    """Every problem in ``values`` as a ``ConfigError`` (empty when valid)."""
    if isinstance(values, schema):
        return []
    try:
        schema.model_validate(dict(values or {}))
    except ValidationError as exc:
        errs = exc.errors()
        # A required parameter spelled wrong ({"unit": 10}) is one mistake, reported where it
        # was made: the unknown key, with the suggestion; not first as "units is required".
        unknown = [_loc_to_field(e["loc"]) for e in errs if e["type"] == "extra_forbidden"]
        suggested = {m for key in unknown for m in difflib.get_close_matches(key, list(schema.model_fields), n=1)}
        errs = [e for e in errs if not (e["type"] == "missing" and _loc_to_field(e["loc"]) in suggested)]
        errs.sort(key=lambda e: e["type"] != "extra_forbidden")
        out = []
        for err in errs:
            field = _loc_to_field(err["loc"])
            msg = _message(schema, err, field)
            out.append(ConfigError(field, f"{owner}: {msg}" if owner else msg))
        return out
    except TypeError as exc:
        return [ConfigError("", f"{owner}: {exc}" if owner else str(exc))]
    return []
