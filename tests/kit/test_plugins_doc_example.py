"""docs/plugins.md's worked example is real code: it passes the kit and registers from an entry point."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import numpy as np

from dlcore.registry import Registry
from dlcore.testing import check_component, plugin_distribution

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def swish_module_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    (source,) = [b for b in blocks if "class Swish(Layer)" in b]
    return source


def test_worked_example_passes_the_kit_and_registers(tmp_path, monkeypatch):
    module = f"h4_doc_swish_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(swish_module_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        dist = plugin_distribution("acme-swish", "0.1.0", {"activations": {"swish": f"{module}:Swish"}})
        registry = Registry.from_entry_points(source=[dist])
        swish = registry.get_layer("acme_swish:swish")
        results = check_component(swish)
        assert {r.status for r in results} == {"passed"}
        # The math the doc states: x * sigmoid(beta x).
        x = np.linspace(-4, 4, 9).reshape(3, 3)
        out = swish(beta=2.0).forward(x)
        np.testing.assert_allclose(out, x / (1 + np.exp(-2.0 * x)), rtol=1e-12)
        (row,) = registry.listing()["activations"]
        assert (row["distribution"], row["version"], row["error"]) == ("acme-swish", "0.1.0", None)
    finally:
        sys.modules.pop(module, None)
