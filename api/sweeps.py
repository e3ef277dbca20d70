"""Sweeps: submit a hyperparameter search, list them, look at one's leaderboard, cancel it.

``POST /sweeps`` checks the whole request before anything is stored
(``dljobs.sweeps_request``: the base spec, the space's paths and domains, the method's
options, and every trial's spec when the space is finite); every problem is a 422
problem+json naming its field (``space.optimizer.lr``, ``method.trials``, ``base.optimizer.lr``).
The scheduler (``dljobs.sweeps``) then starts the first trials, each an ordinary job.
Another owner's sweep is a 404, as its jobs are.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, url_for

from api.context import db, enqueue, settings
from api.documentation import BAD_REQUEST, INVALID, documented, json_content, ok, problem
from api.lookups import caller, get_sweep
from api.problems import Problem, error_item, validation_problem
from api.requests import IntQueryArg, read_json_body, refuse_unknown_query
from api.serializers import sweep_answer, sweep_summary
from dlcore.errors import ConfigError, SpecError
from dljobs import queries, sweeps
from dljobs.sweeps_request import prepare_sweep

bp = Blueprint("sweeps", __name__)

UNKNOWN_SWEEP = problem("Unknown sweep (or another owner's)")
PAGE_LIMIT = IntQueryArg("limit", 50, 1, 200)
LIST_PARAMETERS = (PAGE_LIMIT.parameter(),)


def render(sweep_id: str):
    session = db()
    session.expire_all()  # the scheduler wrote through its own session
    sweep = get_sweep(sweep_id)
    return sweep_answer(sweep, queries.sweep_trials(session, sweep.id))


@bp.post("/sweeps")
@documented("submitSweep", "Submit a hyperparameter search; its trials are ordinary jobs",
            body=json_content("SweepRequest"),
            responses={"201": ok("Created; its first trials are queued", "Sweep"),
                       "400": BAD_REQUEST, "413": problem("The JSON body is over DLJOBS_MAX_JSON_BYTES"),
                       "422": INVALID})
def create_sweep():
    body = read_json_body()
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:
        raise Problem(422, "Invalid sweep", "the sweep holds NaN or Infinity, which JSON cannot store",
                      [error_item("body", "must hold finite numbers only")]) from None
    try:
        prepared = prepare_sweep(db(), body, seen_by=caller(), settings=settings())
    except (SpecError, ConfigError) as exc:
        raise validation_problem(exc, title="Invalid sweep") from None
    sweep = sweeps.create_sweep(db(), prepared, caller().owner)
    try:
        sweeps.advance(settings(), sweep.id, enqueue=enqueue)
    except Exception:
        # The sweep is stored: the workers' tick starts its trials within DLJOBS_SWEEP_TICK_S.
        current_app.logger.exception("sweep %s: starting its first trials failed; the tick will", sweep.id)
    resp = jsonify(render(sweep.id))
    resp.status_code = 201
    resp.headers["Location"] = url_for("sweeps.show_sweep", sweep_id=sweep.id)
    return resp


@bp.get("/sweeps")
@documented("listSweeps", "Sweeps, newest first", parameters=LIST_PARAMETERS,
            responses={"200": ok("Sweeps", "SweepList"), "400": BAD_REQUEST})
def list_sweeps():
    refuse_unknown_query(LIST_PARAMETERS)
    rows = queries.sweeps(db(), seen_by=caller(), limit=PAGE_LIMIT.read())
    return jsonify({"sweeps": [sweep_summary(s) for s in rows]})


@bp.get("/sweeps/<sweep_id>")
@documented("getSweep", "One sweep with its leaderboard, best first",
            responses={"200": ok("The sweep", "Sweep"), "404": UNKNOWN_SWEEP})
def show_sweep(sweep_id: str):
    return jsonify(render(sweep_id))


@bp.post("/sweeps/<sweep_id>/cancel")
@documented("cancelSweep", "Cancel (idempotent): queued trials never run, running ones stop",
            responses={"200": ok("The sweep", "Sweep"), "404": UNKNOWN_SWEEP})
def cancel_sweep(sweep_id: str):
    sweep = get_sweep(sweep_id)
    sweeps.cancel_sweep(settings(), sweep.id)
    return jsonify(render(sweep.id))
