"""The interface of a search method: what the sweep scheduler calls, and nothing more.

A search method is a class found through the ``dljobs.search_methods`` entry-point group
(the built-ins ``grid``, ``random`` and ``asha`` are declared there like a third party's).
It has a typed ``Options`` schema (pydantic; validated when the sweep is submitted, the
sweep's ``method`` object minus its ``type``) and pure functions over an explicit
**state**: a JSON-able dict the scheduler stores in the sweep's row, so a sweep resumes
after any restart exactly where it was.  A method never touches the database, Celery or
the clock; given the same state and the same calls it makes the same decisions.

The scheduler, under the sweep's lock, calls:

- ``initial_state()`` once, when the sweep is created;
- ``suggest(state, n_free)`` whenever trial slots are free (``n_free`` >= 1): up to
  ``n_free`` :class:`TrialRequest` s; fewer (or none) is fine, e.g. while waiting for results;
- ``on_result(state, trial, epoch, score)`` when a trial that asked for a budget
  (``TrialRequest.epochs``) completes that many epochs: a :class:`Decision`;
- ``on_trial_end(state, trial, score)`` once per trial job that ended (``score`` None when it
  failed or has no metric; an invalid draw is told at once, with None; a trial rerun into
  its sweep is told again, its newest result);
- ``done(state)``: True when the method will suggest nothing more.  The sweep ends when its
  method is done and none of its trials is still active.

Every function may change ``state`` in place: the scheduler works on a copy and stores it
in the same transaction as the trials it creates.  ``score`` is the sweep's metric turned
so that **higher is better** (``val_accuracy`` as it is, ``val_loss`` negated); a method
never needs to know which metric the sweep optimises.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from dljobs.search.space import SearchSpace

#: The version of this interface a method declares in ``api_version`` (the listing shows it).
SEARCH_API_VERSION = 1


class Decision(StrEnum):
    """What the scheduler does with a trial that reached its budget of epochs."""

    CONTINUE = "continue"  # train on, to the end of its spec (the budget is lifted)
    STOP = "stop"  # end it now: the job ends ``stopped_early``
    PROMOTE = "promote"  # checkpoint it and continue from that checkpoint to ``Trial.epochs`` epochs


@dataclass
class TrialRequest:
    """A trial the method wants started.

    - params: ``{spec path: value}``, applied to the sweep's base spec;
    - epochs: a budget (ASHA's first rung): the scheduler asks ``on_result`` when the trial
      has completed this many epochs; None trains the spec's own epochs with no question.
    """

    params: dict[str, Any]
    epochs: int | None = None


@dataclass
class Trial:
    """A trial the scheduler started: ``index`` numbers the sweep's trials from 0, in order."""

    index: int
    params: dict[str, Any]
    epochs: int | None = None  # its current budget (raised by a promotion)
    job_id: str | None = None


@dataclass
class MethodContext:
    """What a method knows of its sweep besides its options."""

    space: SearchSpace
    max_epochs: int  # the base spec's training.epochs
    metric: str = "val_accuracy"
    extras: dict[str, Any] = field(default_factory=dict)


class SearchMethod:
    """Base of every search method (subclass it, give it ``Options``, declare the entry point).

    ``summary`` is one line for the listing; ``api_version`` is :data:`SEARCH_API_VERSION`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    api_version: ClassVar[int] = SEARCH_API_VERSION

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, options: BaseModel, context: MethodContext):
        self.options = options
        self.context = context

    # -- submission-time checks ------------------------------------------------

    @classmethod
    def check(cls, options: BaseModel, context: MethodContext) -> list[tuple[str, str]]:
        """``(field, reason)`` pairs for options that cannot work with this space and base
        spec (fields relative to the request, e.g. ``method.max_epochs``); none by default."""
        return []

    def spec_overrides(self) -> dict[str, Any]:
        """``{spec path: value}`` every trial's spec gets (ASHA: ``training.epochs``); none by default."""
        return {}

    def planned_trials(self) -> list[dict[str, Any]] | None:
        """Every trial's params when they are known at submission (a grid), else None.

        The API validates each one's spec before the sweep is stored.
        """
        return None

    # -- the scheduler's calls -------------------------------------------------

    def initial_state(self) -> dict:
        return {}

    def suggest(self, state: dict, n_free: int) -> list[TrialRequest]:
        raise NotImplementedError

    def on_result(self, state: dict, trial: Trial, epoch: int, score: float | None) -> Decision:
        return Decision.CONTINUE

    def on_trial_end(self, state: dict, trial: Trial, score: float | None) -> None:
        return None

    def done(self, state: dict) -> bool:
        raise NotImplementedError

    def describe_state(self, state: dict) -> dict | None:
        """What the sweep's answer shows of the method's progress (``stages``...); None: nothing."""
        return None


#: The metrics a sweep ranks by, and whether higher is better.
METRICS: dict[str, bool] = {"val_accuracy": True, "val_loss": False}


def score_of(metric: str, value: float | None) -> float | None:
    """A metric's value as a score, higher is better (``val_loss`` negated); None stays None."""
    if value is None:
        return None
    return float(value) if METRICS[metric] else -float(value)


def metric_value(metric: str, score: float | None) -> float | None:
    """The metric's value a score stands for (the inverse of :func:`score_of`)."""
    return score_of(metric, score)  # negation is its own inverse


def trial_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of trial ``index``: the same draws whatever order trials are asked in."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), zlib.crc32(b"dljobs.search")])
