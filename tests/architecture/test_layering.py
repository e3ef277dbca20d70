"""DESIGN.md's layering is enforced, not hoped for: the import-linter contracts in pyproject.toml pass.

grimp (under import-linter) reads function-level imports too, so a cycle hidden inside a
function body breaks the acyclic contract just like one at module level.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint_imports() -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is part of the test extra; `make install` installs it"
    return subprocess.run(
        [exe, str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )


def test_every_import_linter_contract_is_kept():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    contracts = [c["name"] for c in CONFIG["contracts"]]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout


def test_the_contracts_cover_the_rules_of_design_md():
    by_type: dict[str, list[dict]] = {}
    for contract in CONFIG["contracts"]:
        by_type.setdefault(contract["type"], []).append(contract)
    forbidden = {c["source_modules"][0]: set(c["forbidden_modules"]) for c in by_type["forbidden"]}
    assert {"dljobs", "api", "workers", "flask", "celery", "sqlalchemy"} <= forbidden["dlcore"]
    assert {"api", "workers"} <= forbidden["dljobs"]
    independent = [set(c["modules"]) for c in by_type["independence"]]
    assert {"api", "workers"} in independent
    blueprints = {m for group in independent for m in group if m.startswith("api.")}
    from api import create_app

    app = create_app({"TESTING": True})
    served_by = {sys.modules[app.view_functions[rule.endpoint].__module__].__name__ for rule in app.url_map.iter_rules()
                 if rule.endpoint != "static"}
    assert served_by <= blueprints, f"blueprint modules missing from the independence contract: {served_by - blueprints}"
    (acyclic,) = by_type["acyclic_siblings"]
    assert set(acyclic["ancestors"]) == set(CONFIG["root_packages"])
