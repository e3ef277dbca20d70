"""docs/plugins.md's worked example is real code: its pyproject snippet wires its module, and it passes the kit.

The test lays the example out as the doc's file tree says (``acme_swish/__init__.py``,
``acme_swish/swish.py``), reads the entry points from the doc's ``pyproject.toml``
snippet, and builds a registry from them in memory (no install; nothing global changes).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np

from dlcore.registry import Registry
from dlcore.testing import check_component, plugin_distribution

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_worked_example_passes_the_kit_and_registers_from_the_doc_pyproject(tmp_path, monkeypatch):
    (swish_source,) = [b for b in doc_blocks("python") if "class Swish(Layer)" in b]
    (pyproject,) = [tomllib.loads(b) for b in doc_blocks("toml")]
    package = tmp_path / "acme_swish"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "swish.py").write_text(swish_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme_swish" not in sys.modules, "an installed acme_swish would shadow the doc's"
    try:
        project = pyproject["project"]
        assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
        assert any(d.split(">")[0].strip() == "dlcore" for d in project["dependencies"])
        dist = plugin_distribution(project["name"], project["version"], project["entry-points"])
        registry = Registry.from_entry_points(source=[dist])
        (row,) = registry.listing()["activations"]
        assert (row["name"], row["distribution"], row["version"], row["error"]) == ("swish", "acme-swish", "0.1.0", None)
        swish = registry.get_layer("acme_swish:swish")
        assert swish is registry.get_layer("swish")

        results = check_component(swish)
        assert {r.status for r in results} == {"passed"}
        # The math the doc states: x * sigmoid(beta x).
        x = np.linspace(-4, 4, 9).reshape(3, 3)
        out = swish(beta=2.0).forward(x)
        np.testing.assert_allclose(out, x / (1 + np.exp(-2.0 * x)), rtol=1e-12)
    finally:
        for name in [m for m in sys.modules if m == "acme_swish" or m.startswith("acme_swish.")]:
            del sys.modules[name]


def test_layer_author_windows_example_runs():
    """The layer author's section of docs/plugins.md runs as written, against the public helpers."""
    (block,) = [b for b in doc_blocks("python") if "from dlcore.layers.windows import" in b]
    exec(compile(block, "docs/plugins.md windows example", "exec"), {})  # noqa: S102  (our own docs)


def test_windows_are_public_and_used_by_the_layers_that_need_them():
    """One home for the window helpers: dlcore's layers and dlcore-extras' import the public module."""
    from dlcore.layers import conv2d, pooling, windows

    root = Path(__file__).resolve().parents[2]
    assert not (root / "dlcore" / "src" / "dlcore" / "layers" / "_windows.py").exists()
    assert conv2d.window_view is windows.window_view and pooling.output_side is windows.output_side
    extras = (root / "plugins" / "dlcore-extras" / "dlcore_extras" / "layers" / "depthwise_conv2d.py").read_text()
    assert "from dlcore.layers.windows import" in extras
    assert "def _output_side" not in extras and "def _offset" not in extras
