"""``GET /sweeps/<id>``: the dashboard's page of one sweep (leaderboard and trials' curves).

A blueprint of its own at the root, so it imports no other blueprint: the page is a template
(``api/templates/sweep.html``) whose script reads ``GET /api/v1/sweeps/<id>`` and each
trial's ``GET /api/v1/jobs/<id>/metrics`` with the session cookie.  The view checks the sweep
exists and is the caller's (``dljobs.queries``, the one owner filter) so that another owner's
sweep, or an unknown id, is a 404 like everywhere else, never an empty page.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template

from api.context import db
from api.documentation import documented, problem
from api.lookups import caller
from api.problems import Problem, error_item
from api.requests import plausible_id
from dljobs import queries
from dljobs.lifecycle import ACTIVE, SWEEP_FINISHED

bp = Blueprint("sweep_pages", __name__)


@bp.get("/sweeps/<sweep_id>")
@documented("sweepPage", "The page of one sweep: leaderboard and the trials' curves overlaid",
            responses={"200": {"description": "The sweep's page",
                               "content": {"text/html": {"schema": {"type": "string"}}}},
                       "404": problem("No such sweep (or another owner's)")})
def sweep_page(sweep_id: str):
    sweep = queries.get_sweep(db(), sweep_id, seen_by=caller()) if plausible_id(sweep_id) else None
    if sweep is None:
        raise Problem(404, "Sweep not found", f"there is no sweep {sweep_id!r}",
                      [error_item("sweep_id", f"unknown sweep {sweep_id!r}")])
    page = render_template(
        "sweep.html", sweep_id=sweep.id, sweep_name=sweep.name or sweep.id, sweep_status=sweep.status,
        active_job_statuses=sorted(s.value for s in ACTIVE),
        finished_sweep_statuses=sorted(s.value for s in SWEEP_FINISHED),
    )
    return Response(page, mimetype="text/html",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
