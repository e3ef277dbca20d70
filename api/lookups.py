"""The rows a URL names, or a 404 problem: shared by every blueprint that takes an id.

Every lookup passes the caller (``api.auth``'s principal) to ``dljobs.queries``, the
one place the owner filter is written: another owner's job or dataset is answered
exactly like a missing one, a 404, on every route and method.  An id that cannot be a
stored id is answered "not found" without a query (:func:`api.requests.plausible_id`).
"""

from __future__ import annotations

from api.auth import principal
from api.context import db
from api.problems import Problem, error_item
from api.requests import plausible_id
from dljobs import queries
from dljobs.tokens import Principal


def caller() -> Principal:
    """The principal of this request; every view but the public few has one (``api.auth``)."""
    found = principal()
    if found is None:  # only a public endpoint gets here without one, and none calls this
        raise Problem(401, "Unauthorized", "this request carries no valid token",
                      [error_item("Authorization", "send Authorization: Bearer <token>")])
    return found


def get_job(job_id: str):
    """The job row, or a 404 problem (also for another owner's job)."""
    job = queries.get_job(db(), job_id, seen_by=caller()) if plausible_id(job_id) else None
    if job is None:
        raise Problem(404, "Job not found", f"there is no job {job_id!r}",
                      [error_item("job_id", f"unknown job {job_id!r}")])
    return job


def get_dataset(dataset_id: str):
    """The dataset row (its blob not loaded), or a 404 problem (also for another owner's)."""
    row = queries.get_dataset(db(), dataset_id, seen_by=caller()) if plausible_id(dataset_id) else None
    if row is None:
        raise Problem(404, "Dataset not found", f"there is no dataset {dataset_id!r}",
                      [error_item("dataset_id", f"unknown dataset {dataset_id!r}")])
    return row


def get_sweep(sweep_id: str):
    """The sweep row, or a 404 problem (also for another owner's sweep)."""
    row = queries.get_sweep(db(), sweep_id, seen_by=caller()) if plausible_id(sweep_id) else None
    if row is None:
        raise Problem(404, "Sweep not found", f"there is no sweep {sweep_id!r}",
                      [error_item("sweep_id", f"unknown sweep {sweep_id!r}")])
    return row
