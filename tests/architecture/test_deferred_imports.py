"""Imports live at the top of a module. One inside a function must say why, in a comment with the
word "deferred" just above it: it breaks a real cycle, or it defers an expensive or optional import
(a web server, torch, a process-start cost) that most callers never pay for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "api", ROOT / "workers", ROOT / "dljobs", ROOT / "dlcore" / "src" / "dlcore"]
FILES = sorted(path for package in PACKAGES for path in package.rglob("*.py"))


def _top_level(tree: ast.Module) -> set[int]:
    """Ids of the import nodes that run when the module is imported (conditionals and try included)."""
    ids, stack = set(), list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            ids.add(id(node))
        elif isinstance(node, ast.If | ast.Try):
            stack.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            stack.extend(n for handler in getattr(node, "handlers", []) for n in handler.body)
    return ids


def silent_deferred_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line`` of every import inside a function or class body with no "deferred" comment above it."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    top = _top_level(tree)
    return [
        f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top
        and "deferred" not in "\n".join(lines[max(0, node.lineno - 4): node.lineno]).lower()
    ]


def test_the_scan_finds_a_silent_function_level_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n\n"
        "def f():\n    import json\n    return json\n\n"
        "def g():\n    # deferred: torch costs seconds to import\n    import torch\n    return torch\n"
    )
    assert silent_deferred_imports(sample, root=tmp_path) == ["sample.py:4 import json"]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_function_level_import_says_why_it_is_deferred(path):
    assert silent_deferred_imports(path) == []
