"""``GET /plugins``: the registry listing, the same document as ``dljobs plugins --json``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api.documentation import any_json, documented
from dljobs.search.registry import plugin_listing as service_plugin_listing

bp = Blueprint("plugins", __name__)


def plugin_listing() -> dict:
    """Every installed component by group, with its schema, version and load errors; the
    sweeps' search methods (``dljobs.search_methods``) under ``search_methods``, in the same rows."""
    return service_plugin_listing()


@bp.get("/plugins")
@documented("plugins", "Installed components (registry)",
            responses={"200": any_json("The registry listing")})
def plugins():
    return jsonify(plugin_listing())
