"""Who may call the API: the Host check, bearer tokens and the browser's cookie, default deny.

Not a blueprint: :func:`install` registers one ``before_request`` on the app, so it
runs before every view of every blueprint, and before the 404 or 405 of a URL no view
answers.  In order:

1. The ``Host`` header must name a host in ``DLJOBS_ALLOWED_HOSTS`` (any port), or the
   answer is a 400.  A page on ``evil.example`` whose name an attacker re-points at
   127.0.0.1 (DNS rebinding) sends ``Host: evil.example``, so it never reaches a view.
2. Credentials: ``Authorization: Bearer <token>``, else the session cookie the login
   exchange (``GET /?token=...``, ``api.pages``) set.  A valid one sets
   ``flask.g.principal`` (a :class:`dljobs.tokens.Principal`).
3. Default deny: every endpoint not in :data:`PUBLIC_ENDPOINTS` needs a principal, or
   the answer is a 401 with ``WWW-Authenticate: Bearer``.  The policy is by endpoint,
   so a route added without one is denied, and a URL that matches no route (404) or no
   method (405) is a 401 too: an anonymous caller learns nothing about the routes.
4. CSRF: a request authenticated by the cookie that changes anything (POST, PUT, PATCH,
   DELETE) must say it comes from this origin (``Origin`` equal to this host, or
   ``Sec-Fetch-Site: same-origin``), else 403.  A browser adds a cookie to a foreign
   page's request; it never adds an ``Authorization`` header, so bearer requests need
   no such check.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, g, redirect, request

from api.context import db, settings
from api.problems import Problem, error_item
from dljobs.tokens import Principal, TokensUnavailable, authenticate

#: The endpoints anyone may call: liveness and readiness probes, static files, and the
#: login exchange (``api.pages``'s index, which checks the ``?token=`` itself).
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "static", "pages.index"})

#: The dashboard's pages (``api.pages``): not public, they need a principal like any endpoint;
#: without one their 401 says how a person logs in rather than which header a script sends.
PAGE_ENDPOINTS = frozenset({"pages.job_page", "pages.compare_page", "pages.submit_page",
                            "sweep_pages.sweep_page"})

#: The cookie the login exchange sets: the token itself, HttpOnly so no script reads it.
COOKIE_NAME = "dljobs_token"

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dljobs"'}


def install(app: Flask) -> None:
    """Run :func:`check_request` before every request of ``app``."""
    app.before_request(check_request)


def principal() -> Principal | None:
    """The caller of this request (None on a public endpoint called without credentials)."""
    return g.get("principal")


def host_name(host: str) -> str:
    """The name part of a Host header, lower case: ``[::1]:8000`` -> ``[::1]``, ``a:80`` -> ``a``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.split(":", 1)[0]


def check_host() -> None:
    allowed = settings().allowed_host_names()
    name = host_name(request.host or "")
    if "*" in allowed or name in allowed:
        return
    raise Problem(400, "Host not allowed",
                  f"this service does not answer to host {name!r}; set DLJOBS_ALLOWED_HOSTS "
                  "to serve it under that name",
                  [error_item("Host", f"{name!r} is not one of DLJOBS_ALLOWED_HOSTS")])


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header ("" for another scheme), or None when absent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def who(plain: str) -> Principal | None:
    """The principal of a token; a 503 (not a 500) when the database cannot say."""
    try:
        return authenticate(db(), plain)
    except TokensUnavailable:
        raise Problem(503, "Database unavailable", "the token could not be checked: the "
                      "database does not answer", [error_item("Authorization", "not checked")],
                      headers={"Retry-After": "5"}) from None


def unauthorized(detail: str, field: str = "Authorization") -> Problem:
    return Problem(401, "Unauthorized", detail, [error_item(field, detail)], headers=CHALLENGE)


def check_request() -> None:
    """The Host check, authentication, default deny and the CSRF check (see the module)."""
    check_host()
    public = request.endpoint in PUBLIC_ENDPOINTS
    bearer = bearer_token()
    cookie = request.cookies.get(COOKIE_NAME)
    g.principal = None
    if bearer is not None:
        g.principal = who(bearer)
        if g.principal is None and not public:
            raise unauthorized("the bearer token is not valid (unknown, revoked or malformed)")
        return
    if cookie:
        g.principal = who(cookie)
        if g.principal is None and not public:
            raise unauthorized("the session cookie's token is no longer valid; log in again "
                               "with the URL `dljobs up` prints", field="cookie")
        if g.principal is not None and request.method in UNSAFE_METHODS:
            check_same_origin()
        return
    if request.endpoint in PAGE_ENDPOINTS:
        raise unauthorized("open the login URL `dljobs up` prints (http://127.0.0.1:PORT/?token=...) "
                           "to sign this browser in", field="cookie")
    if not public:
        raise unauthorized("send `Authorization: Bearer <token>` (`dljobs tokens create`, or the "
                           "token file `dljobs up` writes)")


def check_same_origin() -> None:
    """A 403 unless this cookie request says it comes from a page of this service."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "same-origin":
        return
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        parts = urlsplit(origin)
        # The host (and port) decide: behind a proxy that ends TLS the scheme the app
        # sees is http while the browser's Origin says https, for the same page.
        if parts.scheme in ("http", "https") and parts.netloc.lower() == (request.host or "").lower():
            return
    raise Problem(403, "Cross-origin request refused",
                  "a request authenticated by the session cookie that changes something must "
                  "come from this service's own pages (Origin or Sec-Fetch-Site); scripts send "
                  "`Authorization: Bearer <token>` instead",
                  [error_item("Origin", f"{origin or 'missing'} is not this service's origin")])


def login_response(plain: str):
    """The login exchange: a valid token sets the session cookie and redirects to ``/`` without it.

    The redirect drops the token from the address bar, the history and any Referer the
    next page would send; the cookie is HttpOnly (no script reads it) and SameSite=Strict
    (no other site's request carries it).
    """
    found = who(plain)
    if found is None:
        raise unauthorized("the login token is not valid (unknown, revoked or malformed)", field="token")
    response = redirect("/", code=303)
    response.set_cookie(COOKIE_NAME, plain, httponly=True, samesite="Strict", path="/",
                        secure=request.is_secure)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
