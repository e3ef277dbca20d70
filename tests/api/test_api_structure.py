"""The shape of the api package: one blueprint per resource, none importing another, no SQL."""

from __future__ import annotations

import ast
from pathlib import Path

import api
from api import create_app

API_DIR = Path(api.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {f"api.{p.stem}": ast.parse(p.read_text(), str(p))
            for p in sorted(API_DIR.glob("*.py")) if p.stem != "__init__"}


def _imported(tree: ast.Module) -> set[str]:
    """Every module ``tree`` imports, at any depth (``from api import x`` counts as ``api.x``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return out


def _blueprint_modules() -> set[str]:
    """Modules that build a ``Blueprint``."""
    return {name for name, tree in _modules().items()
            if any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Blueprint"
                   for n in ast.walk(tree))}


def test_the_blueprints_are_the_resources():
    assert _blueprint_modules() == {f"api.{name}" for name in (
        "jobs", "models", "events", "datasets", "plugins", "health", "openapi", "pages", "logs",
        "metrics", "sweeps",
        "sweep_pages")}


def test_every_blueprint_is_registered(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    assert {bp.import_name for bp in app.blueprints.values()} == _blueprint_modules()


def test_no_blueprint_imports_another():
    blueprints = _blueprint_modules()
    modules = _modules()
    crossing = {name: sorted(_imported(modules[name]) & (blueprints - {name}))
                for name in blueprints}
    assert {k: v for k, v in crossing.items() if v} == {}


def test_views_run_no_sql_of_their_own():
    """Persistence reads are dljobs.queries; no api module imports SQLAlchemy."""
    users = {name for name, tree in _modules().items()
             if any(m == "sqlalchemy" or m.startswith("sqlalchemy.") for m in _imported(tree))}
    assert users == set()


def test_shared_helpers_import_no_blueprint():
    blueprints = _blueprint_modules()
    modules = _modules()
    shared = set(modules) - blueprints
    assert {"api.requests", "api.uploads", "api.lookups", "api.model_cache",
            "api.serializers", "api.problems", "api.documentation", "api.context"} <= shared
    leaks = {name: sorted(_imported(modules[name]) & blueprints) for name in shared}
    assert {k: v for k, v in leaks.items() if v} == {}
