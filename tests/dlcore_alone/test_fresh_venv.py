"""dlcore is a library of its own: ``pip install ./dlcore`` in a fresh venv gives a library that needs
nothing of the service.

In a new virtual environment (no system site-packages) with dlcore alone, plus
``plugins/dlcore-extras`` installed with ``--no-deps`` beside it: flask, celery, sqlalchemy,
psycopg and redis are not importable; every Python block of docs/dlcore.md and dlcore/README.md
runs (pytest is installed too, as in a plugin author's test environment); and the conformance kit passes on every installed component, the built-ins and the plugin's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PROBE = textwrap.dedent(
    """
    import importlib.util, json, re, sys, warnings
    from pathlib import Path

    out = {"service_packages": {}, "blocks": [], "kit": {}}
    for name in ("flask", "celery", "sqlalchemy", "psycopg", "redis", "dljobs", "torch"):
        out["service_packages"][name] = importlib.util.find_spec(name) is not None
    warnings.simplefilter("ignore")
    for doc in sys.argv[1:]:
        text = Path(doc).read_text()
        for i, block in enumerate(re.findall(r"```python\\n(.*?)```", text, flags=re.DOTALL)):
            exec(compile(block, f"{doc} block {i + 1}", "exec"), {})
            out["blocks"].append(f"{Path(doc).name}#{i + 1}")

    from dlcore.registry import default_registry
    from dlcore.testing import run_checks

    registry = default_registry()
    for group, rows in registry.listing().items():
        for row in rows:
            assert not row.get("error"), row
            cls = registry.get(group, f"{row['distribution']}:{row['name']}")
            results = run_checks(cls)
            out["kit"][f"{row['distribution']}:{group}:{row['name']}"] = {
                r.status: sum(1 for x in results if x.status == r.status) for r in results
            }
            bad = [f"{r.check}: {r.message}" for r in results if not r.ok]
            assert not bad, (row["name"], bad)
    print(json.dumps(out))
    """
)


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout + done.stderr


def test_dlcore_alone_in_a_fresh_venv_runs_its_docs_and_passes_the_kit_with_a_plugin_beside_it(tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py = str(venv / "bin" / "python")
    # pytest too: a plugin author's test environment has it, and the kit's docs use it.
    _run([py, "-m", "pip", "install", "-q", str(ROOT / "dlcore"), "pytest"], tmp_path)
    # -v shows the build backend's own output, where setuptools prints its deprecation warnings.
    installed = _run([py, "-m", "pip", "install", "-v", "--no-deps", str(ROOT / "plugins" / "dlcore-extras")], tmp_path)
    assert "SetuptoolsDeprecationWarning" not in installed, installed

    frozen = _run([py, "-m", "pip", "list", "--format=json"], tmp_path)
    names = {p["name"].lower() for p in json.loads(frozen)}
    assert {"dlcore", "dlcore-extras", "numpy", "pydantic"} <= names
    assert not names & {"flask", "celery", "sqlalchemy", "psycopg", "redis", "dljobs", "scikit-learn"}

    docs = [str(ROOT / "docs" / "dlcore.md"), str(ROOT / "dlcore" / "README.md")]
    # Run from an empty folder so that nothing of the checkout is importable but what pip installed.
    probe = _run([py, "-c", PROBE, *docs], tmp_path, timeout=900)
    found = json.loads(probe.strip().splitlines()[-1])

    assert found["service_packages"] == {name: False for name in found["service_packages"]}
    expected_blocks = sum(len(re.findall(r"```python\n", Path(d).read_text())) for d in docs)
    assert len(found["blocks"]) == expected_blocks >= 6
    kit = found["kit"]
    plugin = {k for k in kit if k.startswith("dlcore-extras:")}
    assert {"dlcore-extras:activations:gelu", "dlcore-extras:layers:layernorm"} <= plugin
    assert {"dlcore:layers:conv2d", "dlcore:architectures:resnet", "dlcore:datasets:digits"} <= set(kit)
    assert sum(counts.get("passed", 0) for counts in kit.values()) > 250
