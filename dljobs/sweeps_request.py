"""``POST /api/v1/sweeps`` checked whole before anything is stored: one typed schema, every fault named.

``prepare_sweep`` returns a :class:`PreparedSweep` or raises one ``SpecError`` listing every
problem with its field as the request wrote it: ``max_concurrent``, ``method.trials``,
``space.optimizer.lr``, ``base.optimizer.lr`` (the base spec's own errors, prefixed).  A
finite space (a grid, or every domain a ``choice`` or ``int``) has every trial's spec
validated here; a continuous one has each sampled trial validated when it is drawn
(``dljobs.sweeps``), and an invalid draw is on the leaderboard with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from dlcore.errors import ConfigError, SpecError
from dljobs.lifecycle import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from dljobs.search.base import MethodContext, SearchMethod
from dljobs.search.registry import default_methods
from dljobs.search.space import MAX_GRID, SearchSpace
from dljobs.settings import Settings
from dljobs.specs import prepare_job_request
from dljobs.tokens import Principal

#: Trials of one sweep running at once, at most.
MAX_CONCURRENT_LIMIT = 64
#: A sweep's name leaves room for its trials' ``-t<index>`` in a job name (200 characters).
MAX_SWEEP_NAME = 180


class SweepRequest(BaseModel):
    """The body of ``POST /api/v1/sweeps``."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "6" and true are no numbers

    name: str = Field("sweep", min_length=1, max_length=MAX_SWEEP_NAME, pattern=r"^[A-Za-z0-9_.\-]+$")
    base: dict[str, Any] = Field(description="the job spec every trial starts from (a POST /jobs body)")
    space: dict[str, Any] = Field(description="{spec path: domain}: choice, uniform, loguniform or int")
    method: dict[str, Any] = Field(description='{"type": <search method>, ...its options}')
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    max_concurrent: int = Field(2, ge=1, le=MAX_CONCURRENT_LIMIT)
    priority: int = Field(DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)


@dataclass
class PreparedSweep:
    request: SweepRequest
    method: SearchMethod
    space: SearchSpace
    max_epochs: int


def _field(loc: tuple, prefix: str = "") -> str:
    out = prefix
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else str(part))
    return out or "body"


def pydantic_errors(exc: ValidationError, prefix: str = "") -> list[ConfigError]:
    return [ConfigError(_field(e["loc"], prefix), str(e["msg"]).removeprefix("Value error, ")) for e in exc.errors()]


def method_of(method: Any, space: SearchSpace, max_epochs: int, metric: str) -> SearchMethod:
    """The search method a sweep's ``method`` object names, its options validated; ConfigError
    (``method.type``) or SpecError (``method.<option>``) otherwise."""
    if not isinstance(method, dict):
        raise ConfigError("method", 'must be an object {"type": <search method>, ...options}')
    cls = default_methods().get(method.get("type"), field="method.type")
    try:
        options = cls.Options.model_validate({k: v for k, v in method.items() if k != "type"})
    except ValidationError as exc:
        raise SpecError(pydantic_errors(exc, "method")) from None
    return cls(options, MethodContext(space=space, max_epochs=max_epochs, metric=metric))


def prepare_sweep(session: Session, body: Any, *, seen_by: Principal | None, settings: Settings) -> PreparedSweep:
    """Check a sweep request whole (see the module's docstring); ``SpecError`` lists every problem."""
    if not isinstance(body, dict):
        raise SpecError([ConfigError("body", "must be a JSON object")])
    try:
        request = SweepRequest.model_validate(body)
    except ValidationError as exc:
        raise SpecError(pydantic_errors(exc)) from None
    try:
        base = prepare_job_request(session, request.base, seen_by=seen_by, settings=settings)
    except SpecError as exc:
        raise SpecError([e.at("base") for e in exc.errors]) from None
    max_epochs = int(base.spec["training"]["epochs"])
    space = SearchSpace.parse(request.space, base=request.base)
    try:
        method = method_of(request.method, space, max_epochs, request.metric)
    except ConfigError as exc:
        raise SpecError([exc]) from None
    problems = [ConfigError(f, m) for f, m in type(method).check(method.options, method.context)]
    if problems:
        raise SpecError(problems)
    planned = method.planned_trials()
    if planned is None and space.is_finite() and space.size() <= MAX_GRID:
        planned = space.grid()  # every trial a finite space can draw
    errors: list[ConfigError] = []
    for params in planned or ():
        reason = trial_spec_problem(session, request, method, space, params, seen_by, settings)
        if reason is not None:
            errors.append(ConfigError("space", f"the trial {params} is invalid: {reason}"))
            if len(errors) >= 5:
                break
    if errors:
        raise SpecError(errors)
    return PreparedSweep(request, method, space, max_epochs)


def trial_body(base: dict, method: SearchMethod, space: SearchSpace, params: dict, name: str) -> dict:
    """The job request of one trial: the base with the method's overrides and the trial's values."""
    body = space.apply(base, {**method.spec_overrides(), **params})
    body["name"] = name
    return body


def trial_spec_problem(session, request: SweepRequest, method, space, params, seen_by, settings) -> str | None:
    """Why the trial with ``params`` cannot run (its spec's errors, one line), or None."""
    try:
        prepare_job_request(session, trial_body(request.base, method, space, params, request.name),
                            seen_by=seen_by, settings=settings)
    except SpecError as exc:
        return "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    except (ConfigError, ValueError) as exc:
        return str(exc)
    return None
