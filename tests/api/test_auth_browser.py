"""Browsers: the login exchange, the same-origin check of cookie writes, and the Host check
that closes DNS rebinding."""

from __future__ import annotations

import pytest

from api.auth import COOKIE_NAME

API = "/api/v1"


def _login(anon_client, token: str):
    return anon_client.get(f"/?token={token}")


def test_the_login_url_sets_an_httponly_strict_cookie_and_redirects_without_the_token(anon_client, admin_token):
    resp = _login(anon_client, admin_token)
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/"
    assert admin_token not in resp.headers["Location"]
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/"
    page = anon_client.get("/")  # the cookie is kept by the test client, as by a browser
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "test-admin" in page.get_data(as_text=True) and "/api/v1/openapi.json" in page.get_data(as_text=True)
    assert anon_client.get(f"{API}/jobs").status_code == 200


def test_a_bad_login_token_is_401_and_sets_no_cookie(anon_client, problem):
    resp = _login(anon_client, "dlj_not-a-token")
    problem(resp, 401, "token")
    assert "Set-Cookie" not in resp.headers
    problem(anon_client.get("/"), 401, "token")


@pytest.fixture
def browser(anon_client, admin_token):
    """A client logged in by the cookie (no Authorization header)."""
    assert _login(anon_client, admin_token).status_code == 303
    return anon_client


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://localhost.evil.example"},
                                     {"Sec-Fetch-Site": "same-site"}])
@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
def test_a_cookie_write_not_from_this_origin_is_403(browser, mlp_spec, problem, headers, method):
    resp = browser.open(f"{API}/jobs", method=method, json=mlp_spec(), headers=headers)
    problem(resp, 403, "Origin")
    assert browser.get(f"{API}/jobs").get_json()["jobs"] == []  # nothing was stored


def test_a_cross_origin_delete_of_a_job_by_cookie_is_refused(browser, client, mlp_spec, problem):
    job_id = client.post(f"{API}/jobs", json=mlp_spec()).get_json()["id"]
    client.post(f"{API}/jobs/{job_id}/cancel")
    problem(browser.delete(f"{API}/jobs/{job_id}", headers={"Origin": "http://evil.example"}), 403)
    assert client.get(f"{API}/jobs/{job_id}").status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"}])
def test_a_cookie_write_from_this_origin_is_allowed(browser, mlp_spec, headers):
    resp = browser.post(f"{API}/jobs", json=mlp_spec(), headers=headers)
    assert resp.status_code == 201, resp.get_json()


def test_cookie_reads_need_no_origin(browser):
    assert browser.get(f"{API}/jobs").status_code == 200


def test_bearer_writes_need_no_origin(client, mlp_spec):
    resp = client.post(f"{API}/jobs", json=mlp_spec(), headers={"Origin": "http://evil.example"})
    assert resp.status_code == 201  # a browser never adds Authorization to a foreign page's request


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.5"])
def test_a_foreign_host_header_is_refused_dns_rebinding(client, anon_client, problem, host):
    """A page on evil.example re-pointed at 127.0.0.1 sends Host: evil.example."""
    for caller in (client, anon_client):
        for path in (f"{API}/jobs", "/healthz", "/"):
            problem(caller.get(path, headers={"Host": host}), 400, "Host")


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:5000", "[::1]:8000", "LOCALHOST"])
def test_loopback_hosts_are_served(client, host):
    assert client.get(f"{API}/jobs", headers={"Host": host}).status_code == 200


def test_allowed_hosts_adds_a_name(tmp_path, admin_client_of):
    from api import create_app
    from dljobs.db import migrate

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    migrate.upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                      "ALLOWED_HOSTS": "jobs.example.org,localhost"})
    client = admin_client_of(app)
    assert client.get(f"{API}/jobs", headers={"Host": "jobs.example.org"}).status_code == 200
    assert client.get(f"{API}/jobs", headers={"Host": "127.0.0.1"}).status_code == 400


def test_a_revoked_token_no_longer_logs_in_or_reads(app, browser, admin_token, problem):
    from api.context import session_factory
    from dljobs.tokens import revoke_token

    with app.app_context(), session_factory()() as session:
        assert revoke_token(session, "test-admin")
    problem(browser.get(f"{API}/jobs"), 401, "cookie")
    problem(browser.get(f"/?token={admin_token}"), 401, "token")
