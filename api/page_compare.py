"""The compare page's spec table: several specs as rows of dotted fields, differences marked.

Not a blueprint: ``api.pages`` renders what :func:`spec_rows` returns.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

#: Shown in a cell whose spec has no such field.
ABSENT = "—"


class SpecRow(NamedTuple):
    """One field of the specs compared: its dotted path, a value per spec, whether they differ."""

    field: str
    values: list[str]
    differs: bool


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model.layers[0].type": "conv2d", ...}``: every leaf of a JSON value under its dotted path.

    An empty object or list is a leaf of its own (``[]``), so a field that is empty in
    one spec and filled in another still shows as a difference.
    """
    out: dict[str, Any] = {}
    stack = [(prefix, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict) and item:
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list) and item:
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        else:
            out[where or "spec"] = item
    return out


def spec_rows(specs: list[dict]) -> list[SpecRow]:
    """The rows of the spec table: every field any spec has, in the order they first appear.

    Inputs:
    - specs: the specs compared, one per column.
    Returns: one :class:`SpecRow` per field; ``values`` are JSON texts (``ABSENT`` where a
    spec lacks the field); ``differs`` when they are not all equal.
    """
    flat = [flatten(spec) for spec in specs]
    fields = list(dict.fromkeys(field for one in flat for field in one))
    rows = []
    for field in fields:
        values = [json.dumps(one[field]) if field in one else ABSENT for one in flat]
        rows.append(SpecRow(field, values, len(set(values)) > 1))
    return rows
