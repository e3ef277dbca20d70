"""dlcore's imports: nothing of the service, no cycle at module level.

Read from the sources with ``ast`` (no import-linter needed), edges as import-linter counts
them: ``from a.b import c`` is an edge to ``a.b`` (or to ``a.b.c`` when that is a module).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "dlcore" / "src"
SERVICE = ("dljobs", "api", "workers", "flask", "celery", "sqlalchemy", "psycopg", "redis", "kombu")


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "dlcore").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str):
    """(imported module, line number, at module level?, the source lines around it) of one module."""
    path = MODULES[name]
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            top.add(id(node))
        if isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            top.update(id(n) for n in node.body + node.orelse if isinstance(n, ast.Import | ast.ImportFrom))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        context = "\n".join(lines[max(0, node.lineno - 3) : node.lineno]) if targets else ""
        for target in targets:
            yield target, node.lineno, id(node) in top, context


def test_dlcore_imports_nothing_of_the_service():
    bad = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        for target, line, _, _ in _imports(name)
        if target.split(".")[0] in SERVICE
    ]
    assert bad == []


def test_dlcore_has_no_import_cycle_at_module_level():
    edges = {
        name: {t for t, _, at_top, _ in _imports(name) if at_top and t in MODULES and t != name} for name in MODULES
    }
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert cycles == []


# Every function-level import saying why it is deferred is checked for all product code, dlcore
# included, in tests/architecture/test_deferred_imports.py.
