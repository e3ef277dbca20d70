"""Typed parameter schemas: one pydantic model per component.

The schema is the single source of truth for a component's parameters: it
validates them, exports JSON Schema for the OpenAPI document and the plugin
listing, and documents defaults, bounds and descriptions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from dlcore.errors import ConfigError


class Config(BaseModel):
    """Base of every component's parameter schema: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
        out = []
        for err in exc.errors():
            field = _loc_to_field(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(schema.model_fields)) or "none"
                msg = f"unknown parameter (allowed: {allowed})"
            out.append(ConfigError(field, f"{owner}: {msg}" if owner else msg))
        return out
    except TypeError as exc:
        return [ConfigError("", f"{owner}: {exc}" if owner else str(exc))]
    return []


def json_schema(schema: type[Config]) -> dict:
    """The JSON Schema of a parameter schema, with defaults, bounds and descriptions."""
    return schema.model_json_schema()
