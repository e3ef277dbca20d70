"""What the OpenAPI document says about a view, declared next to the view itself.

A view is documented by a decorator under its route::

    @bp.get("/jobs/<job_id>")
    @documented("getJob", "One job",
                responses={"200": ok("The job", "Job"), "404": UNKNOWN_JOB})
    def show_job(job_id): ...

``api.openapi`` walks the app's URL map and asks each view for its
:class:`Operation`; the path, its path parameters and the method come from the route,
so the document cannot list a route the app does not serve, and a test fails on any
route left undocumented.  Schemas are named as in ``components/schemas``: the answers
of ``api.serializers`` and ``JobSpec``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

REF_PREFIX = "#/components/schemas/"

#: The attribute of a view function holding its :class:`Operation`.
OPERATION_ATTRIBUTE = "openapi_operation"


#: The size rule of every JSON request body (OpenAPI has no keyword for a body's size).
JSON_BODY_RULE = ("a JSON body of at most DLJOBS_MAX_JSON_BYTES bytes (1 MiB by default); "
                  "a larger one is a 413, refused from its Content-Length before it is read")


@dataclass(frozen=True)
class Operation:
    """One operation of the document, less what its route already says."""

    operation_id: str
    summary: str
    responses: dict
    parameters: tuple[dict, ...] = ()
    body: dict | None = None  # the request body's ``content``; a body, when given, is required

    def as_openapi(self) -> dict:
        """The OpenAPI operation object."""
        out = {"operationId": self.operation_id, "summary": self.summary}
        if self.parameters:
            out["parameters"] = [dict(p) for p in self.parameters]
        responses = dict(self.responses)
        if self.body is not None:
            out["requestBody"] = {"required": True, "content": self.body}
            if "application/json" in self.body:  # api.requests.read_json_body enforces it
                out["requestBody"]["description"] = JSON_BODY_RULE
                responses.setdefault("413", problem(f"Too large: {JSON_BODY_RULE}"))
        out["responses"] = responses
        return out


def documented(operation_id: str, summary: str, *, responses: dict,
               parameters: tuple[dict, ...] | list[dict] = (),
               body: dict | None = None) -> Callable:
    """Attach the view's :class:`Operation`; the view itself is returned unchanged.

    Inputs:
    - operation_id: the document's ``operationId`` (clients generate method names from it).
    - summary: one line.
    - responses: ``{"200": ok(...), "404": problem(...)}``.
    - parameters: query and header parameters (path parameters come from the route).
    - body: the request body's content by media type.
    """
    operation = Operation(operation_id, summary, responses, tuple(parameters), body)

    def attach(view: Callable) -> Callable:
        setattr(view, OPERATION_ATTRIBUTE, operation)
        return view

    return attach


def operation_of(view: Callable) -> Operation | None:
    """The :class:`Operation` a view declared, or None."""
    return getattr(view, OPERATION_ATTRIBUTE, None)


# ---------------------------------------------------------------------------- building blocks


def json_content(schema_name: str) -> dict:
    """A JSON body whose schema is ``components/schemas/<schema_name>``."""
    return {"application/json": {"schema": {"$ref": REF_PREFIX + schema_name}}}


def ok(description: str, schema_name: str) -> dict:
    """A JSON answer of the named schema."""
    return {"description": description, "content": json_content(schema_name)}


def any_json(description: str) -> dict:
    """A JSON object answer with no schema of its own."""
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "object"}}}}


def problem(description: str) -> dict:
    """An error answer (problem+json)."""
    return {"description": description,
            "content": {"application/problem+json":
                        {"schema": {"$ref": REF_PREFIX + "ProblemDetails"}}}}


BAD_REQUEST = problem("Malformed request (field named in errors)")
INVALID = problem("Invalid spec or inputs (every field at fault in errors)")
UNKNOWN_JOB = problem("Unknown job (or another owner's)")
JOB_CONFLICT = problem("Conflict with the job's state")
UNAUTHORIZED = problem("No valid token (Authorization: Bearer, or the login cookie)")

#: An ``.npz`` upload: a multipart form field ``file`` (and a ``name``) or the raw bytes.
NPZ_UPLOAD = {
    "multipart/form-data": {"schema": {
        "type": "object",
        "properties": {"file": {"type": "string", "contentMediaType": "application/zip"},
                       "name": {"type": "string"}},
        "required": ["file"]}},
    "application/octet-stream": {"schema": {"type": "string",
                                            "contentMediaType": "application/zip"}},
}
