"""``GET /``: the login exchange and a minimal page saying who you are.

``GET /?token=<token>`` (the URL ``dljobs up`` prints) sets the session cookie and
redirects to ``/`` without the token (``api.auth.login_response``).  ``GET /`` with the
cookie (or a bearer token) answers a small HTML page; the dashboard replaces it later.
The index is on ``api.auth``'s public list because it is the login exchange; without
a valid token or cookie it answers 401 itself.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, request

from api.auth import login_response, principal, unauthorized
from api.documentation import documented, problem

bp = Blueprint("pages", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dljobs</title></head>
<body>
<h1>dljobs</h1>
<p>Signed in as token <b>{name}</b> (owner <b>{owner}</b>{admin}).</p>
<ul>
<li><a href="/api/v1/jobs">/api/v1/jobs</a>: your jobs</li>
<li><a href="/api/v1/openapi.json">/api/v1/openapi.json</a>: the API document</li>
</ul>
</body></html>
"""


@bp.get("/")
@documented("index", "The login exchange (?token=) and a page saying who you are",
            parameters=[{"name": "token", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "the token of the login URL `dljobs up` prints"}],
            responses={"200": {"description": "Who you are",
                               "content": {"text/html": {"schema": {"type": "string"}}}},
                       "303": {"description": "Logged in: the cookie is set; go to / without the token"},
                       "401": problem("No valid token or cookie")})
def index():
    token = request.args.get("token")
    if token is not None:
        return login_response(token)
    caller = principal()
    if caller is None:
        raise unauthorized("open the login URL `dljobs up` prints (http://127.0.0.1:PORT/?token=...)",
                           field="token")
    page = PAGE.format(name=escape(caller.name), owner=escape(caller.owner),
                       admin=", admin: sees every owner's jobs" if caller.admin else "")
    return Response(page, mimetype="text/html",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
