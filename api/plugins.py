"""``GET /plugins``: the registry listing, the same document as ``dljobs plugins --json``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from dlcore.registry import default_registry

bp = Blueprint("plugins", __name__)


def plugin_listing() -> dict:
    """Every installed component by group, with its schema, version and load errors."""
    return default_registry().listing()


@bp.get("/plugins")
def plugins():
    return jsonify(plugin_listing())
