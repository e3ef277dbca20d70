"""``GET /openapi.json``: the OpenAPI 3.1 document, generated from the same schemas.

The job spec's schema is ``dljobs.specs.job_request_json_schema()`` (dlcore's
``job_spec_json_schema()``, generated from every installed component's ``Config``,
plus the service's fields); the answers' schemas are the pydantic
models of ``api.serializers``.  Nothing here is written by hand twice.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic.json_schema import models_json_schema

from api.serializers import ANSWER_MODELS

bp = Blueprint("openapi", __name__)

REF_PREFIX = "#/components/schemas/"
SPEC_PREFIX = "JobSpec."


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
    from dljobs.specs import job_request_json_schema

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


def _json(schema_name: str) -> dict:
    return {"application/json": {"schema": {"$ref": REF_PREFIX + schema_name}}}


def _problem(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json":
                        {"schema": {"$ref": REF_PREFIX + "ProblemDetails"}}}}


def _ok(description: str, schema_name: str) -> dict:
    return {"description": description, "content": _json(schema_name)}


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}


def paths() -> dict:
    bad = _problem("Malformed request (field named in errors)")
    invalid = _problem("Invalid spec or inputs (every field at fault in errors)")
    missing = _problem("Unknown job")
    conflict = _problem("Conflict with the job's state")
    npz = {"multipart/form-data": {"schema": {
        "type": "object", "properties": {"file": {"type": "string",
                                                  "contentMediaType": "application/zip"},
                                         "name": {"type": "string"}},
        "required": ["file"]}},
        "application/octet-stream": {"schema": {"type": "string",
                                                "contentMediaType": "application/zip"}}}
    return {
        "/api/v1/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Submit a job; the body is the job spec itself",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 255}}],
                "requestBody": {"required": True, "content": _json("JobSpec")},
                "responses": {"201": _ok("Created and queued", "Job"),
                              "200": _ok("Replayed: same Idempotency-Key and body", "Job"),
                              "400": bad, "409": _problem("Idempotency-Key reused"),
                              "422": invalid},
            },
            "get": {
                "operationId": "listJobs",
                "summary": "Jobs, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string"},
                     "description": "comma-separated statuses"},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _ok("A page of jobs", "JobList"), "400": bad},
            },
        },
        "/api/v1/jobs/{job_id}": {
            "parameters": [JOB_ID],
            "get": {"operationId": "getJob", "summary": "One job",
                    "responses": {"200": _ok("The job", "Job"), "404": missing}},
            "delete": {"operationId": "deleteJob",
                       "summary": "Delete a finished job and its artifacts",
                       "responses": {"204": {"description": "Deleted"}, "404": missing,
                                     "409": conflict}},
        },
        "/api/v1/jobs/{job_id}/cancel": {
            "parameters": [JOB_ID],
            "post": {"operationId": "cancelJob", "summary": "Cancel (idempotent)",
                     "responses": {"200": _ok("The job", "Job"), "404": missing}},
        },
        "/api/v1/jobs/{job_id}/rerun": {
            "parameters": [JOB_ID],
            "post": {"operationId": "rerunJob", "summary": "A new job with the same spec",
                     "responses": {"201": _ok("The new job", "Job"), "404": missing,
                                   "422": invalid}},
        },
        "/api/v1/jobs/{job_id}/metrics": {
            "parameters": [JOB_ID],
            "get": {"operationId": "jobMetrics", "summary": "Metric history, incremental",
                    "parameters": [
                        {"name": "since", "in": "query",
                         "schema": {"type": "integer", "minimum": -1, "maximum": 2**31 - 1}},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                        {"name": "kind", "in": "query",
                         "schema": {"type": "string", "enum": ["epoch", "iteration"]}}],
                    "responses": {"200": _ok("Points after since", "MetricPage"),
                                  "400": bad, "404": missing}},
        },
        "/api/v1/jobs/{job_id}/events": {
            "parameters": [JOB_ID],
            "get": {"operationId": "jobEvents",
                    "summary": "Server-Sent Events (status, progress, metrics, diagnostic)",
                    "parameters": [{"name": "Last-Event-ID", "in": "header",
                                    "schema": {"type": "string"}},
                                   {"name": "last_event_id", "in": "query",
                                    "schema": {"type": "string"},
                                    "description": "for clients that cannot set headers"}],
                    "responses": {"200": {"description": "An event stream",
                                          "content": {"text/event-stream":
                                                      {"schema": {"type": "string"}}}},
                                  "400": _problem("Last-Event-ID is not an event id"),
                                  "404": missing}},
        },
        "/api/v1/jobs/{job_id}/model": {
            "parameters": [JOB_ID],
            "get": {"operationId": "downloadModel", "summary": "The trained model (.npz)",
                    "responses": {"200": {"description": "The model",
                                          "content": {"application/octet-stream":
                                                      {"schema": {"type": "string"}}}},
                                  "404": missing, "409": conflict}},
        },
        "/api/v1/jobs/{job_id}/predict": {
            "parameters": [JOB_ID],
            "post": {"operationId": "predict", "summary": "Predict classes of samples",
                     "requestBody": {"required": True,
                                     "content": {**_json("PredictRequest"), **npz}},
                     "responses": {"200": _ok("Predictions", "Prediction"), "400": bad,
                                   "404": missing, "409": conflict,
                                   "413": _problem("Larger than DLJOBS_MAX_UPLOAD_BYTES"),
                                   "422": _problem("Wrong shape (the expected one named)")}},
        },
        "/api/v1/datasets": {
            "post": {"operationId": "uploadDataset", "summary": "Upload an .npz dataset",
                     "requestBody": {"required": True, "content": npz},
                     "responses": {"201": _ok("Stored", "DatasetInfo"),
                                   "400": _problem("A name that cannot be stored"),
                                   "413": _problem("Larger than DLJOBS_MAX_UPLOAD_BYTES, or "
                                                   "arrays over 16 times that once loaded"),
                                   "415": _problem("Not an upload"),
                                   "422": _problem("Invalid or pickled .npz")}},
            "get": {"operationId": "listDatasets", "summary": "Uploaded datasets",
                    "responses": {"200": _ok("Datasets", "DatasetList")}},
        },
        "/api/v1/datasets/{dataset_id}": {
            "get": {"operationId": "getDataset", "summary": "One dataset",
                    "parameters": [{"name": "dataset_id", "in": "path", "required": True,
                                    "schema": {"type": "string"}}],
                    "responses": {"200": _ok("The dataset", "DatasetInfo"),
                                  "404": _problem("Unknown dataset")}},
        },
        "/api/v1/plugins": {
            "get": {"operationId": "plugins", "summary": "Installed components (registry)",
                    "responses": {"200": {"description": "The registry listing",
                                          "content": {"application/json":
                                                      {"schema": {"type": "object"}}}}}},
        },
        "/api/v1/openapi.json": {
            "get": {"operationId": "openapi", "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1",
                                          "content": {"application/json":
                                                      {"schema": {"type": "object"}}}}}},
        },
        "/healthz": {"get": {"operationId": "healthz", "summary": "The process answers",
                             "responses": {"200": _ok("Up", "Health")}}},
        "/readyz": {"get": {"operationId": "readyz",
                            "summary": "The database and the broker answer",
                            "responses": {"200": _ok("Ready", "Health"),
                                          "503": _ok("Not ready", "Health")}}},
    }


def openapi_document() -> dict:
    """The whole OpenAPI 3.1 document."""
    from dljobs import __version__

    schemas = answer_schemas()
    schemas.update(job_spec_schemas())
    return {
        "openapi": "3.1.0",
        "info": {"title": "dljobs", "version": __version__,
                 "description": "Train NumPy neural networks as jobs. Errors are "
                                "application/problem+json with the fields at fault."},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths(),
        "components": {"schemas": schemas},
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi_document())
