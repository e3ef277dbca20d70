"""Default deny: every rule of the URL map, with every method it allows and one it does not,
answers 401 without credentials, except the explicit public list (api.auth.PUBLIC_ENDPOINTS)."""

from __future__ import annotations

import re

import pytest

from api import create_app
from api.auth import PUBLIC_ENDPOINTS
from dljobs.db import migrate

#: Methods tried on every rule: the ones a client could send to change or read anything.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

#: What a public endpoint may answer without credentials (the login exchange's own 401).
PUBLIC_ANSWERS = {"health.healthz": {200}, "health.readyz": {200, 503},
                  "pages.index": {401}, "static": {200, 404}}


def _fill(rule: str) -> str:
    """A URL of the rule: every ``<arg>`` a plausible id (32 hex digits)."""
    return re.sub(r"<[^>]+>", "0" * 32, rule)


def _walk(app):
    """``(endpoint, url, method, allowed)`` for every rule and every method in ALL_METHODS.

    ALL_METHODS holds at least one method each rule does not allow (no rule takes all seven).
    """
    for rule in app.url_map.iter_rules():
        assert set(ALL_METHODS) - rule.methods, f"{rule} allows every method tried"
        for method in ALL_METHODS:
            yield rule.endpoint, _fill(rule.rule), method, method in rule.methods


def _assert_denied(resp, where: str) -> None:
    assert resp.status_code == 401, f"{where}: {resp.status_code} {resp.get_data(as_text=True)[:300]}"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    if resp.request.method != "HEAD":
        assert resp.mimetype == "application/problem+json", where
        assert resp.get_json()["status"] == 401


def test_every_rule_and_method_without_credentials_is_401_unless_public(app, anon_client):
    walked = denied = 0
    for endpoint, url, method, allowed in _walk(app):
        resp = anon_client.open(url, method=method)
        walked += 1
        where = f"{method} {url} ({endpoint})"
        if endpoint in PUBLIC_ENDPOINTS and allowed:
            # OPTIONS of a public rule is Flask's own Allow answer: it names the public methods
            expected = {200} if method == "OPTIONS" else PUBLIC_ANSWERS[endpoint]
            assert resp.status_code in expected, where
            continue
        # a method the rule does not allow is no public call: 401, not a 405 that maps the route
        _assert_denied(resp, where)
        denied += 1
    rules = {r.endpoint for r in app.url_map.iter_rules()}
    assert {"jobs.create_job", "jobs.delete_job", "datasets.upload_dataset", "models.predict",
            "events.job_events", "openapi.openapi_json", "plugins.plugins"} <= rules
    assert denied >= 10 * len(ALL_METHODS)
    print(f"default deny: {walked} rule x method pairs walked, {denied} answered 401")


def test_the_public_list_is_the_probes_static_files_and_the_login_exchange():
    assert PUBLIC_ENDPOINTS == {"health.healthz", "health.readyz", "static", "pages.index"}


def test_a_route_added_without_a_policy_is_denied(tmp_path, admin_client_of):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    migrate.upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                      "DLJOBS_ENQUEUE": lambda job_id: None})

    @app.route("/api/v1/brand-new", methods=["GET", "POST", "DELETE"])
    def brand_new():
        return {"secret": "reached"}

    anon = app.test_client()
    for method in ("GET", "POST", "DELETE", "PUT"):
        _assert_denied(anon.open("/api/v1/brand-new", method=method), f"{method} /api/v1/brand-new")
    assert admin_client_of(app).get("/api/v1/brand-new").get_json() == {"secret": "reached"}


@pytest.mark.parametrize("path", ["/nothing-here", "/api/v1/jobs/x/y/z", "/api/v2/jobs"])
def test_unknown_urls_are_401_too_so_routes_cannot_be_mapped_anonymously(anon_client, client, path):
    _assert_denied(anon_client.get(path), path)
    assert client.get(path).status_code == 404  # with a token: the ordinary answer


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer dlj_" + "x" * 43, "Basic dXNlcjpwYXNz", "Bearer"])
def test_a_wrong_token_or_scheme_is_401(anon_client, header):
    _assert_denied(anon_client.get("/api/v1/jobs", headers={"Authorization": header}), header)


def test_probes_answer_without_credentials(anon_client):
    assert anon_client.get("/healthz").status_code == 200
    assert anon_client.get("/readyz").status_code == 200


def test_a_database_that_cannot_check_a_token_is_a_503_not_a_500(client, monkeypatch, problem):
    from api import auth
    from dljobs.tokens import TokensUnavailable

    def unreachable(session, plain):
        raise TokensUnavailable("the token could not be checked: OperationalError")

    monkeypatch.setattr(auth, "authenticate", unreachable)
    resp = client.get("/api/v1/jobs")
    problem(resp, 503, "Authorization")
    assert resp.headers["Retry-After"] == "5"
