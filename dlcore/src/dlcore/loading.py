"""Loading a saved model: the stack is rebuilt from the saved spec, then the saved arrays fill it.

It lives above :mod:`dlcore.spec` (it calls ``build``), so that ``dlcore.model``, which ``build``
returns, never needs the spec package: no import cycle between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

from dlcore.model import MODEL_FORMAT_VERSION, Model, array_to_json, read_npz
from dlcore.spec import build
from dlcore.spec.sections import upgrade_saved_spec


def load_model(source: bytes | str | Path | IO[bytes] | Mapping[str, np.ndarray], registry=None) -> Model:
    """A model saved by :meth:`Model.save` / :meth:`Model.to_bytes`.

    Inputs:
    - source: a path, a binary file object, the bytes, or the arrays already read (``Model.arrays()``).
    - registry: where the saved spec's component names are looked up (default: everything installed).
    Returns: the :class:`Model`, weights, state and preprocessing statistics as saved.
    Raises ``ValueError`` for another format version, ``SpecError`` when a component is missing.
    """
    arrays = source if isinstance(source, Mapping) else read_npz(source)
    version = int(arrays.get("format_version", -1))
    if version != MODEL_FORMAT_VERSION:
        raise ValueError(f"unsupported model format_version {version}; this dlcore reads {MODEL_FORMAT_VERSION}")
    model = build(upgrade_saved_spec(array_to_json(arrays["spec_json"])), registry=registry, init_warnings=[])
    model.load_arrays(arrays)
    return model
