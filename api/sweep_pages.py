"""``GET /sweeps/<id>``: the dashboard's page of one sweep (leaderboard and trials' curves).

A blueprint of its own at the root, so it imports no other blueprint: the page is a template
(``api/templates/sweep.html``, on the dashboard's ``base.html``, rendered by
``api.page_render``) whose script (``api/static/sweep.js``) reads ``GET /api/v1/sweeps/<id>``
and each trial's ``GET /api/v1/jobs/<id>/metrics`` with the session cookie.  The view checks
the sweep exists and is the caller's (``dljobs.queries``, the one owner filter), so another
owner's sweep or an unknown id is a 404 as everywhere else.
"""

from __future__ import annotations

from flask import Blueprint

from api.documentation import documented, problem
from api.lookups import get_sweep
from api.page_render import html_answer, page
from dljobs.lifecycle import SWEEP_FINISHED

bp = Blueprint("sweep_pages", __name__)


@bp.get("/sweeps/<sweep_id>")
@documented("sweepPage", "The page of one sweep: leaderboard and the trials' curves overlaid",
            responses={"200": html_answer("The sweep's page"),
                       "401": problem("No valid token or cookie"),
                       "404": problem("No such sweep (or another owner's)")})
def sweep_page(sweep_id: str):
    sweep = get_sweep(sweep_id)
    return page("sweep.html", sweep_id=sweep.id, sweep_name=sweep.name or sweep.id, sweep_status=sweep.status,
                page_data={"id": sweep.id, "finished_sweep_statuses": sorted(s.value for s in SWEEP_FINISHED)})
