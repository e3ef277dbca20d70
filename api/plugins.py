"""``GET /plugins``: the registry listing, the same document as ``dljobs plugins --json``."""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("plugins", __name__)


def plugin_listing() -> dict:
    """Every installed component by group, with its schema, version and load errors."""
    from dlcore.registry import default_registry

    registry = default_registry()
    listing = getattr(registry, "listing", None)
    if listing is not None:
        return listing()
    # The minimal registry (before the plugin issue lands): names by group.
    from dlcore.registry import GROUPS

    return {"groups": {g: [{"name": n} for n in registry.names(g)] for g in GROUPS},
            "errors": []}


@bp.get("/plugins")
def plugins():
    return jsonify(plugin_listing())
