"""The dashboard: the login exchange, the job list, a job, the compare view and the submit form.

``GET /?token=<token>`` (the URL ``dljobs up`` prints) sets the session cookie and
redirects to ``/`` without the token (``api.auth.login_response``).  Every page needs a
principal, the cookie's or a bearer token's (``api.auth``); the index is on the public
list only because it is the login exchange, and answers 401 itself without one.

The pages are Jinja templates (``api/templates``) with plain scripts (``api/static``,
no build step) that call the JSON API with the cookie, as any client does: the list
and a running job refresh themselves by polling it, and the buttons (cancel, rerun)
post to it from this origin, which the CSRF check of ``api.auth`` asks of cookie writes.
Charts are uPlot, vendored in ``api/static/vendor/uplot``: no page needs the network.
"""

from __future__ import annotations

import json

from flask import Blueprint, request

from api.auth import login_response, principal, unauthorized
from api.context import db
from api.documentation import UNAUTHORIZED, UNKNOWN_JOB, documented, problem
from api.lookups import get_job
from api.page_compare import spec_rows
from api.page_examples import example_specs
from api.page_render import html_answer, page
from api.requests import id_list_arg, refuse_unknown_query
from api.serializers import job_answer
from dljobs import jobstore

bp = Blueprint("pages", __name__)

#: The most jobs one compare view overlays (a chart of more lines is unreadable).
MAX_COMPARED = 8

TOKEN_PARAMETER = {"name": "token", "in": "query", "required": False,
                   "schema": {"type": "string"},
                   "description": "the token of the login URL `dljobs up` prints"}


@bp.get("/")
@documented("index", "The login exchange (?token=), then the job list page (live; its "
            "filters, ?status= and ?name=, are those of listJobs, which the page calls)",
            parameters=[TOKEN_PARAMETER],
            responses={"200": html_answer("The job list page"),
                       "303": {"description": "Logged in: the cookie is set; go to / without the token"},
                       "401": problem("No valid token or cookie")})
def index():
    token = request.args.get("token")
    if token is not None:
        return login_response(token)
    if principal() is None:
        raise unauthorized("open the login URL `dljobs up` prints (http://127.0.0.1:PORT/?token=...)",
                           field="token")
    return page("jobs.html")


@bp.get("/jobs/<job_id>")
@documented("jobPage", "A job's page: curves, model table, confusion matrix, diagnostics, "
            "spec, and its buttons",
            responses={"200": html_answer("The job's page"), "401": UNAUTHORIZED, "404": UNKNOWN_JOB})
def job_page(job_id: str):
    refuse_unknown_query(())
    job = get_job(job_id)
    answer = job_answer(job, job.diagnostics, jobstore.queue_position(db(), job))
    # the spec in the order it was written (Jinja's tojson would sort its keys)
    return page("job.html", job=answer, spec_text=json.dumps(answer["spec"], indent=2))


COMPARE_PARAMETERS = (
    {"name": "jobs", "in": "query", "required": True,
     "schema": {"type": "string", "minLength": 1},
     "description": f"1 to {MAX_COMPARED} job ids, separated by commas"},
)


@bp.get("/compare")
@documented("comparePage", f"Up to {MAX_COMPARED} jobs' curves overlaid and their specs side "
            "by side, the differences highlighted",
            parameters=COMPARE_PARAMETERS,
            responses={"200": html_answer("The compare page"), "400": problem("Bad ?jobs= list"),
                       "401": UNAUTHORIZED, "404": UNKNOWN_JOB})
def compare_page():
    refuse_unknown_query(COMPARE_PARAMETERS)
    jobs = [get_job(job_id) for job_id in id_list_arg("jobs", MAX_COMPARED)]
    answers = [job_answer(job) for job in jobs]
    rows = spec_rows([answer["spec"] for answer in answers])
    return page("compare.html", jobs=answers, rows=rows)


@bp.get("/submit")
@documented("submitPage", "The submit form, starting from any example spec",
            responses={"200": html_answer("The submit page"), "401": UNAUTHORIZED})
def submit_page():
    refuse_unknown_query(())
    return page("submit.html", examples=example_specs())
