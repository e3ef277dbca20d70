"""``GET /openapi.json``: the OpenAPI 3.1 document, derived from the routes and the schemas.

``paths`` comes from the app's URL map: each route's path, path parameters and
methods from the rule, the rest from what its view declares next to itself
(``api.documentation.documented``).  The job request's schema is
``dljobs.specs.job_request_json_schema()`` (dlcore's ``job_spec_json_schema()``,
generated from every installed component's ``Config``, plus the service's fields);
the answers' schemas are the pydantic models of ``api.serializers``.  Nothing here
is written by hand twice.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, current_app, jsonify
from pydantic.json_schema import models_json_schema

from api.auth import PUBLIC_ENDPOINTS
from api.documentation import REF_PREFIX, UNAUTHORIZED, any_json, documented, operation_of
from api.serializers import ANSWER_MODELS
from dljobs import __version__
from dljobs.specs import job_request_json_schema

bp = Blueprint("openapi", __name__)

SPEC_PREFIX = "JobSpec."

#: The document's name of the bearer scheme every non-public operation requires.
SECURITY_SCHEME = "bearerToken"

#: Methods Flask answers on every route by itself; the document leaves them out.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})

#: ``<name>`` or ``<converter:name>`` (or ``<converter(args):name>``) in a Flask rule.
_RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?"
                            r"(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTER_TYPES = {"int": "integer", "float": "number"}


def _rewrite_refs(node, mapping: dict[str, str]):
    """A copy of ``node`` with ``#/$defs/X`` references pointed at ``components/schemas``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                out[key] = REF_PREFIX + mapping.get(value[len("#/$defs/"):], value)
            elif key == "$ref" and value == "#":
                out[key] = REF_PREFIX + "JobSpec"
            else:
                out[key] = _rewrite_refs(value, mapping)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, mapping) for v in node]
    return node


def job_spec_schemas() -> dict[str, dict]:
    """``{"JobSpec": ..., "JobSpec.<def>": ...}``: the spec schema with its ``$defs`` hoisted."""
    schema = dict(job_request_json_schema())
    defs = schema.pop("$defs", {}) or {}
    schema.pop("$schema", None)
    schema.pop("$id", None)
    mapping = {name: SPEC_PREFIX + name for name in defs}
    out = {"JobSpec": _rewrite_refs(schema, mapping)}
    for name, sub in defs.items():
        out[mapping[name]] = _rewrite_refs(sub, mapping)
    return out


def answer_schemas() -> dict[str, dict]:
    _, top = models_json_schema([(m, "serialization") for m in ANSWER_MODELS],
                                ref_template=REF_PREFIX + "{model}")
    return dict(top.get("$defs", {}))


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/jobs/<job_id>`` is ``/jobs/{job_id}``."""
    return _RULE_ARGUMENT.sub(lambda m: "{" + m.group("name") + "}", rule)


def path_parameters(rule: str) -> list[dict]:
    """The path parameters of a Flask rule, in the order they appear in it."""
    return [{"name": m.group("name"), "in": "path", "required": True,
             "schema": {"type": _CONVERTER_TYPES.get(m.group("converter"), "string")}}
            for m in _RULE_ARGUMENT.finditer(rule)]


def served_operations(app: Flask):
    """``(rule, method, view)`` of every route of ``app`` and method it answers.

    ``HEAD`` and ``OPTIONS``, which Flask answers for every route, are left out.
    """
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - IMPLICIT_METHODS):
            yield rule, method, app.view_functions[rule.endpoint]


def paths(app: Flask) -> dict:
    """The document's ``paths``: every route of ``app`` with the operation its view declares.

    A route whose view declares nothing is left out (the test of the document fails on
    it); path parameters are declared once per path, from the rule.
    """
    out: dict[str, dict] = {}
    for rule, method, view in served_operations(app):
        operation = operation_of(view)
        if operation is None:
            continue
        item = out.setdefault(openapi_path(rule.rule), {})
        parameters = path_parameters(rule.rule)
        if parameters:
            item["parameters"] = parameters
        answer = operation.as_openapi()
        if rule.endpoint in PUBLIC_ENDPOINTS:
            answer["security"] = []  # anyone may call it (api.auth.PUBLIC_ENDPOINTS)
        else:
            answer["responses"] = {**answer["responses"], "401": UNAUTHORIZED}
        item[method.lower()] = answer
    return out


def openapi_document(app: Flask) -> dict:
    """The whole OpenAPI 3.1 document of ``app``."""
    schemas = answer_schemas()
    schemas.update(job_spec_schemas())
    return {
        "openapi": "3.1.0",
        "info": {"title": "dljobs", "version": __version__,
                 "description": "Train NumPy neural networks as jobs. Errors are "
                                "application/problem+json with the fields at fault."},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths(app),
        "security": [{SECURITY_SCHEME: []}],
        "components": {"schemas": schemas, "securitySchemes": {SECURITY_SCHEME: {
            "type": "http", "scheme": "bearer",
            "description": "A token of `dljobs tokens create`, or the one `dljobs up` writes "
                           "to <data-dir>/token. Another owner's jobs and datasets answer 404."}}},
    }


@bp.get("/openapi.json")
@documented("openapi", "This document", responses={"200": any_json("OpenAPI 3.1")})
def openapi_json():
    return jsonify(openapi_document(current_app))
