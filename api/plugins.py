"""``GET /plugins``: the registry listing, the same document as ``dljobs plugins --json``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.documentation import any_json, documented
from dlcore.registry import default_registry

bp = Blueprint("plugins", __name__)


def plugin_listing() -> dict:
    """Every installed component by group, with its schema, version and load errors."""
    return default_registry().listing()


@bp.get("/plugins")
@documented("plugins", "Installed components (registry)",
            responses={"200": any_json("The registry listing")})
def plugins():
    return jsonify(plugin_listing())
