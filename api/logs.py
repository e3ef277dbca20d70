"""``GET /jobs/<id>/logs``: the lines the job's workers logged while they ran it, paged.

The lines are stored in the database (``job_logs``, written by ``dljobs.joblogs`` from
the worker), so they are here with no shared disk and after the worker is gone.  A
page holds the lines after ``?after=<seq>`` (0: from the first), at most ``?limit=``;
``next_after`` is what to pass for the next page, and ``finished`` says the job will
log no more, so a follower (``dljobs logs -f``) stops once a page comes back empty and
``finished`` is true.  A worker writes its last lines just after the job's final status
(the line saying how it ended among them), so ``finished`` waits ``SETTLE_S`` past the
job's end.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, jsonify
from pydantic import BaseModel

from api.context import db
from api.documentation import BAD_REQUEST, UNKNOWN_JOB, documented
from api.lookups import get_job
from api.requests import IntQueryArg, refuse_unknown_query
from api.serializers import iso
from dljobs import queries
from dljobs.db.models import utcnow
from dljobs.joblogs import FLUSH_S
from dljobs.lifecycle import FINISHED, JobStatus

bp = Blueprint("logs", __name__)

#: Seconds after a job's end by which its worker has written its last lines.
SETTLE_S = 2 * FLUSH_S + 1
#: Lines one page answers at most.
MAX_PAGE = 1000
AFTER = IntQueryArg("after", 0, 0, 2**63 - 1)
LIMIT = IntQueryArg("limit", 200, 1, MAX_PAGE)
PARAMETERS = (
    {**AFTER.parameter(), "description": "the seq of the last line the caller has (0: from the first)"},
    {**LIMIT.parameter(), "description": f"lines in this page (1-{MAX_PAGE}, default 200)"},
)


class JobLogLine(BaseModel):
    seq: int
    created_at: str
    level: str
    logger: str
    message: str


class JobLogPage(BaseModel):
    job_id: str
    lines: list[JobLogLine]
    next_after: int
    finished: bool


def _page_schema() -> dict:
    schema = JobLogPage.model_json_schema(ref_template="#/$defs/{model}")
    line = schema.pop("$defs")["JobLogLine"]
    schema["properties"]["lines"]["items"] = line  # inline: the document's schemas are the serializers'
    return schema


@bp.get("/jobs/<job_id>/logs")
@documented("jobLogs", "The job's log lines (what its workers logged while running it), paged",
            parameters=PARAMETERS,
            responses={"200": {"description": "Lines after `after`, oldest first",
                               "content": {"application/json": {"schema": _page_schema()}}},
                       "400": BAD_REQUEST, "404": UNKNOWN_JOB})
def job_logs(job_id: str):
    job = get_job(job_id)
    refuse_unknown_query(PARAMETERS)
    after = AFTER.read()
    limit = LIMIT.read()
    rows = queries.job_log_page(db(), job.id, after, limit)
    lines = [JobLogLine(seq=r.id, created_at=iso(r.created_at), level=r.level, logger=r.logger,
                        message=r.message).model_dump() for r in rows]
    return jsonify({"job_id": job.id, "lines": lines,
                    "next_after": rows[-1].id if rows else after,
                    "finished": _logs_complete(job)})


def _logs_complete(job) -> bool:
    """Whether the job will log no more: finished, and ``SETTLE_S`` past its end."""
    if JobStatus(job.status) not in FINISHED:
        return False
    return job.finished_at is None or utcnow() - job.finished_at >= timedelta(seconds=SETTLE_S)
