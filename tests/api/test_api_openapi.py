"""The OpenAPI document: derived from the route table, valid 3.1, and true to the answers."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from api import jobs
from api.documentation import documented, ok
from api.openapi import openapi_document, openapi_path, path_parameters
from api.requests import MAX_CHART_POINTS

API = "/api/v1"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
#: Methods Flask answers on every route by itself: not operations of the document.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
#: Endpoints that are not the API's: Flask's static files, when the app has a folder for them.
NOT_DOCUMENTED = {"static"}


def _served(app) -> set[tuple[str, str]]:
    """``(OpenAPI path, method)`` of every route of ``app``, converted independently of api.openapi."""
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_DOCUMENTED:
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        out |= {(path, m.lower()) for m in rule.methods - IMPLICIT_METHODS}
    return out


def _documented(doc) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item
            if method in HTTP_METHODS}


def _document(app) -> dict:
    with app.app_context():
        return openapi_document(app)


def test_openapi_document_is_valid_3_1_with_the_answer_schemas(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert {"JobSpec", "Job", "JobList", "ProblemDetails", "MetricPage"} <= set(schemas)


def test_every_route_is_documented_and_every_documented_operation_is_served(app, client):
    doc = client.get(f"{API}/openapi.json").get_json()
    served, listed = _served(app), _documented(doc)
    assert served - listed == set(), "routes the document leaves out"
    assert listed - served == set(), "documented operations no route serves"
    adapter = app.url_map.bind("localhost")
    for path, method in sorted(listed):
        item = doc["paths"][path]
        names = re.findall(r"{([^{}]+)}", path)
        assert [p["name"] for p in item.get("parameters", []) if p["in"] == "path"] == names
        endpoint, args = adapter.match(re.sub(r"{([^{}]+)}", "abc", path), method=method.upper())
        assert endpoint not in NOT_DOCUMENTED and set(args) == set(names), (path, method)


def test_a_route_without_documentation_is_caught_not_guessed(app):
    app.add_url_rule(f"{API}/undocumented/<thing_id>", endpoint="undocumented",
                     view_func=lambda thing_id: thing_id, methods=["PUT"])
    doc = _document(app)
    assert f"{API}/undocumented/{{thing_id}}" not in doc["paths"]
    assert _served(app) - _documented(doc) == {(f"{API}/undocumented/{{thing_id}}", "put")}


def test_a_documented_view_is_listed_under_its_rule_and_methods(app):
    @documented("touchThing", "Touch a thing", responses={"200": ok("The job", "Job")})
    def touch(thing_id: int):
        return str(thing_id)

    app.add_url_rule(f"{API}/things/<int:thing_id>", view_func=touch, methods=["PUT", "PATCH"])
    item = _document(app)["paths"][f"{API}/things/{{thing_id}}"]
    assert set(item) == {"parameters", "put", "patch"}
    assert item["parameters"] == [{"name": "thing_id", "in": "path", "required": True,
                                   "schema": {"type": "integer"}}]
    assert item["put"]["operationId"] == "touchThing"


def test_operation_ids_are_unique(app, client):
    doc = client.get(f"{API}/openapi.json").get_json()
    ids = [op["operationId"] for item in doc["paths"].values() for method, op in item.items()
           if method in HTTP_METHODS]
    # one id per served operation (a count that follows the routes, so a new one needs no edit)
    assert len(ids) == len(set(ids)) == len(_served(app)) >= 18
    assert {"deleteDataset", "listJobs", "rerunJob"} <= set(ids)


def _refs(node) -> set[str]:
    """Every ``$ref`` value anywhere in ``node``."""
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_reference_names_a_schema_of_the_document(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    refs = _refs(doc)
    prefix = "#/components/schemas/"
    assert {"#/components/schemas/Job", "#/components/schemas/JobSpec"} <= refs
    assert all(ref.startswith(prefix) for ref in refs), sorted(refs)[:5]
    assert {ref[len(prefix):] for ref in refs} - set(doc["components"]["schemas"]) == set()


@pytest.mark.parametrize(("rule", "path", "types"), [
    ("/jobs", "/jobs", []),
    ("/jobs/<job_id>/events", "/jobs/{job_id}/events", [("job_id", "string")]),
    ("/a/<int:n>/b/<string(length=2):code>/<path:rest>", "/a/{n}/b/{code}/{rest}",
     [("n", "integer"), ("code", "string"), ("rest", "string")]),
])
def test_flask_rules_become_openapi_paths(rule, path, types):
    assert openapi_path(rule) == path
    assert [(p["name"], p["schema"]["type"]) for p in path_parameters(rule)] == types
    assert all(p["in"] == "path" and p["required"] for p in path_parameters(rule))


def test_query_bounds_are_the_ones_the_views_check(client, problem):
    doc = client.get(f"{API}/openapi.json").get_json()
    limit = next(p for p in doc["paths"][f"{API}/jobs"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": jobs.MAX_PAGE}
    assert client.get(f"{API}/jobs?limit={jobs.MAX_PAGE}").status_code == 200
    problem(client.get(f"{API}/jobs?limit={jobs.MAX_PAGE + 1}"), 400, "limit")
    metrics = doc["paths"][f"{API}/jobs/{{job_id}}/metrics"]["get"]["parameters"]
    assert {p["name"]: p["schema"].get("maximum") for p in metrics} == {
        "since": jobs.METRICS_SINCE.high, "limit": jobs.MAX_METRIC_PAGE, "kind": None,
        "max_points": MAX_CHART_POINTS}


def test_openapi_job_spec_is_dlcores_schema(client):
    from dlcore.spec import job_spec_json_schema

    doc = client.get(f"{API}/openapi.json").get_json()
    spec_schema = job_spec_json_schema()
    assert set(doc["components"]["schemas"]["JobSpec"].get("properties", {})) == set(
        spec_schema.get("properties", {}))
    text = str(doc)
    assert "#/$defs/" not in text


def test_openapi_job_answer_matches_a_real_answer(client, session):
    """The documented Job properties are exactly the keys of a real answer."""
    from dljobs import jobstore

    job = jobstore.create_job(session, {"name": "x"}, {}, "x")
    answer = client.get(f"{API}/jobs/{job.id}").get_json()
    doc = client.get(f"{API}/openapi.json").get_json()
    assert set(doc["components"]["schemas"]["Job"]["properties"]) == set(answer)


def test_the_documented_statuses_are_the_lifecycles(client):
    from dljobs.lifecycle import STATUSES

    doc = client.get(f"{API}/openapi.json").get_json()
    assert doc["components"]["schemas"]["Job"]["properties"]["status"]["enum"] == [
        s.value for s in STATUSES]
