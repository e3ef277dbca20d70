"""``GET /sweeps/<id>``: the dashboard's page of one sweep (leaderboard and trials' curves).

A blueprint of its own at the root, so it imports no other blueprint: the page is a template
(``api/templates/sweep.html``, on the dashboard's ``base.html``) whose script
(``api/static/sweep.js``) reads ``GET /api/v1/sweeps/<id>`` and each trial's
``GET /api/v1/jobs/<id>/metrics`` with the session cookie, and draws with the dashboard's
chart helper.  The view checks the sweep exists and is the caller's (``dljobs.queries``, the
one owner filter), so another owner's sweep or an unknown id is a 404 as everywhere else.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from api.context import db
from api.documentation import documented, problem
from api.lookups import caller
from api.problems import Problem, error_item
from api.requests import plausible_id
from dljobs import queries
from dljobs.lifecycle import ACTIVE, FINISHED, STATUSES, SWEEP_FINISHED

bp = Blueprint("sweep_pages", __name__)

#: The points per kind the dashboard's charts ask for, and the headers of every dashboard page
#: (no cache, no Referer, scripts from this origin only): the values of ``api.pages``, which a
#: blueprint may not import; keep them equal (tests/sweeps/test_sweep_page.py compares them).
CHART_POINTS = 2000
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


@bp.get("/sweeps/<sweep_id>")
@documented("sweepPage", "The page of one sweep: leaderboard and the trials' curves overlaid",
            responses={"200": {"description": "The sweep's page",
                               "content": {"text/html": {"schema": {"type": "string"}}}},
                       "401": problem("No valid token or cookie"),
                       "404": problem("No such sweep (or another owner's)")})
def sweep_page(sweep_id: str):
    sweep = queries.get_sweep(db(), sweep_id, seen_by=caller()) if plausible_id(sweep_id) else None
    if sweep is None:
        raise Problem(404, "Sweep not found", f"there is no sweep {sweep_id!r}",
                      [error_item("sweep_id", f"unknown sweep {sweep_id!r}")])
    page = render_template(
        "sweep.html", sweep_id=sweep.id, sweep_name=sweep.name or sweep.id, sweep_status=sweep.status,
        page_data={"id": sweep.id, "finished_sweep_statuses": sorted(s.value for s in SWEEP_FINISHED)},
        # what base.html gives every page's script: the lifecycle's sets, the caller, the budget
        caller=caller(), statuses=[s.value for s in STATUSES],
        finished=[s.value for s in STATUSES if s in FINISHED],
        active=[s.value for s in STATUSES if s in ACTIVE], chart_points=CHART_POINTS,
    )
    return Response(page, mimetype="text/html", headers=PAGE_HEADERS)
