"""Job statuses have one home, dljobs/lifecycle.py: no product module spells one as a string."""

from __future__ import annotations

import ast
from pathlib import Path

from dljobs.lifecycle import STATUSES

ROOT = Path(__file__).resolve().parents[2]
# dlcore is left out: it cannot import dljobs and knows no jobs, so a "failed" there (a kit check outcome) is
# not a job status.
PRODUCT = [ROOT / "api", ROOT / "workers", ROOT / "dljobs"]
HOME = ROOT / "dljobs" / "lifecycle.py"
STATUS_VALUES = {s.value for s in STATUSES}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def status_literals(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line value`` of every string constant that is exactly a job status (docstrings aside)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstring_nodes(tree)
    return [
        f"{path.relative_to(root)}:{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATUS_VALUES
        and id(node) not in skip
    ]


def test_the_scan_finds_a_literal_where_there_is_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""queued"""\nstatus = "queued"\nother = "queued later"\n')
    assert status_literals(sample, root=tmp_path) == ["sample.py:2 'queued'"]


def test_no_job_status_literal_in_product_code_outside_the_lifecycle_module():
    found = [
        hit
        for folder in PRODUCT
        for path in sorted(folder.rglob("*.py"))
        if path != HOME
        for hit in status_literals(path)
    ]
    assert not found, "use dljobs.lifecycle's names:\n" + "\n".join(found)


# The transition table itself is tested in tests/service/test_lifecycle.py.
