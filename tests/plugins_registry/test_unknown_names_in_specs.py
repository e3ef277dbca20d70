"""Must-show 2, the refusal side: a registry without dlcore-extras refuses 'gelu' in a spec by kind.

(The acceptance side, a model naming gelu and layernorm that trains, is tested in
plugins/dlcore-extras/tests.)
"""

from __future__ import annotations

import pytest

from dlcore.errors import SpecError
from dlcore.registry import Registry


def test_spec_naming_a_missing_plugin_component_is_refused_with_kind_names_and_hint():
    validate = pytest.importorskip("dlcore.spec.validate").validate
    registry = Registry.from_entry_points(exclude=["dlcore_extras"])  # PEP 503: same as dlcore-extras
    spec = {
        "dataset": {"type": "spiral"},
        "model": {"layers": [{"type": "affine", "units": 8}, {"type": "gelu"}, {"type": "affine", "units": 3}]},
        "optimizer": {"type": "adamw", "lr": 0.01},
    }
    with pytest.raises(SpecError) as exc:
        validate(spec, registry)
    errors = {e.field: e.message for e in exc.value.errors}

    gelu = errors["model.layers[1].type"]
    assert gelu.startswith("unknown layer or activation 'gelu'")
    assert "installed layers and activations: " in gelu and "affine" in gelu and "gelu," not in gelu
    assert "install a plugin that provides it" in gelu and "dljobs plugins" in gelu

    adamw = errors["optimizer.type"]
    assert adamw.startswith("unknown optimizer 'adamw'")
    assert "installed optimizers: " in adamw and "install a plugin" in adamw
