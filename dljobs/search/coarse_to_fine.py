"""``coarse_to_fine``: CS231n's recipe, random search in stages over narrowing ranges.

Stage 1 draws its trials at random from the whole space and trains each for a few epochs.
When every trial of a stage has ended, the next stage's ranges are narrowed around the best
``top_fraction`` (a quarter) of the stage's trials, one dimension at a time: the span (min to
max) of their values, in log space for ``loguniform``, widened on each side by ``widen`` of
the stage's own width and clipped to it; a ``choice`` keeps the choices they used.  The next
stage draws at random from those ranges and trains each trial for its own, longer, epochs.

Each stage's epochs reach the trial as the param ``training.epochs``, so a short trial is a
job that trains its epochs and succeeds; every stage's ranges, epochs and trial counts are
in the state's description (``GET /api/v1/sweeps/<id>``'s ``method_state.stages``).

Trials are numbered in the order they were suggested (:class:`dljobs.search.base.Trial`'s
``index``), so stage ``k`` owns a fixed block of indices and the state never needs job ids.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dljobs.search.base import (
    MethodContext,
    SearchMethod,
    Trial,
    TrialRequest,
    metric_value,
    trial_rng,
)
from dljobs.search.space import Choice, Domain, IntRange, LogUniform, Uniform, parse_domain

#: The spec path each stage's epochs are written to.
EPOCHS_PATH = "training.epochs"
#: The most trials a sweep of this method runs, all stages together.
MAX_TRIALS = 1000


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trials: int = Field(ge=1, le=1000, description="how many trials this stage draws")
    epochs: int = Field(ge=1, le=10_000, description="how many epochs each of its trials trains")


class CoarseToFineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stages: list[Stage] = Field(
        default_factory=lambda: [Stage(trials=8, epochs=1), Stage(trials=8, epochs=4)],
        min_length=2, max_length=6,
        description="the stages in order: the first over the whole space, each next one over "
                    "ranges narrowed around the best of the one before",
    )
    top_fraction: float = Field(0.25, gt=0.0, le=1.0,
                                description="the share of a stage's best trials the next ranges cover")
    widen: float = Field(0.05, ge=0.0, le=1.0,
                         description="each side of a narrowed range grows by this share of the old width")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the draws depend on this alone")

    @model_validator(mode="after")
    def _bounded(self):
        total = sum(stage.trials for stage in self.stages)
        if total > MAX_TRIALS:
            raise ValueError(f"the stages hold {total} trials, more than {MAX_TRIALS} (random's and asha's limit)")
        return self


def domain_json(domain: Domain) -> dict[str, Any]:
    """The request's form of a domain: ``{"loguniform": [0.001, 0.1]}``."""
    if isinstance(domain, Choice):
        return {"choice": list(domain.choice)}
    return {domain.key: list(domain.bounds) if not isinstance(domain, IntRange) else list(domain.int_)}


def narrow(domain: Domain, values: list[Any], widen: float) -> Domain:
    """``domain`` narrowed to the span of ``values`` (the best trials' values), widened on each
    side by ``widen`` of the domain's width (in log space for loguniform) and clipped to it.

    Inputs:
    - domain: the stage's domain of one path;
    - values: at least one value the domain produced;
    - widen: in [0, 1].
    Returns: a domain of the same kind inside ``domain``; a choice keeps the values it offered
    that appear in ``values``, in its own order.
    """
    if isinstance(domain, Choice):
        kept = [c for c in domain.choice if c in values]
        return Choice(choice=kept or list(domain.choice))
    log = isinstance(domain, LogUniform)
    low, high = (math.log(b) for b in domain.bounds) if log else domain.bounds
    points = [math.log(v) if log else float(v) for v in values]
    pad = widen * (high - low)
    new_low, new_high = max(low, min(points) - pad), min(high, max(points) + pad)
    if log:
        # exp(log(x)) may miss x by an ulp: clip so the range stays inside the old one
        old_low, old_high = domain.bounds
        return LogUniform(loguniform=(max(old_low, math.exp(new_low)), min(old_high, math.exp(new_high))))
    if isinstance(domain, IntRange):
        return IntRange(int=(math.floor(new_low), math.ceil(new_high)))
    return Uniform(uniform=(new_low, new_high))


def best(scored: list[tuple[dict[str, Any], float]], fraction: float) -> list[dict[str, Any]]:
    """The params of the best ``fraction`` of ``scored`` (higher is better), at least one; in
    score order, ties kept in trial order."""
    ranked = sorted(scored, key=lambda pair: -pair[1])
    keep = max(1, math.ceil(fraction * len(ranked)))
    return [params for params, _score in ranked[:keep]]


class CoarseToFine(SearchMethod):
    name = "coarse_to_fine"
    summary = ("CS231n's coarse to fine: short random trials over the space, then longer ones "
               "over ranges narrowed around the best quarter (stages, top_fraction, widen, seed)")
    Options = CoarseToFineOptions

    def __init__(self, options: CoarseToFineOptions, context: MethodContext):
        super().__init__(options, context)
        # stage k owns trial indices [starts[k], starts[k + 1])
        self.starts = [0]
        for stage in options.stages:
            self.starts.append(self.starts[-1] + stage.trials)

    @classmethod
    def check(cls, options, context: MethodContext) -> list[tuple[str, str]]:
        if EPOCHS_PATH in context.space.paths:
            return [(f"space.{EPOCHS_PATH}",
                     "coarse_to_fine sets each trial's training.epochs from its stage's epochs")]
        return []

    def initial_state(self) -> dict:
        whole = {path: domain_json(d) for path, d in self.context.space.domains.items()}
        # scores and params by trial index (as strings: JSON keys), filled as trials end
        return {"issued": 0, "stage": 0, "ranges": [whole], "scores": {}, "params": {}}

    def suggest(self, state: dict, n_free: int) -> list[TrialRequest]:
        out: list[TrialRequest] = []
        while len(out) < n_free and not self.done(state):
            stage = state["stage"]
            if state["issued"] == self.starts[stage + 1]:
                if not self._stage_ended(state, stage):
                    break  # the next ranges need every result of this stage
                self._open_next_stage(state)
                continue
            index = state["issued"]
            rng = trial_rng(self.options.seed, index)
            ranges = state["ranges"][stage]
            params = {path: parse_domain(ranges[path]).sample(rng) for path in self.context.space.paths}
            params[EPOCHS_PATH] = self.options.stages[stage].epochs
            out.append(TrialRequest(params=params))
            state["issued"] += 1
        return out

    def on_trial_end(self, state: dict, trial: Trial, score: float | None) -> None:
        # JSON keys are strings; a trial without a metric counts as ended but ranks nowhere
        state["scores"][str(trial.index)] = score
        state["params"][str(trial.index)] = {
            p: trial.params[p] for p in self.context.space.paths if p in trial.params
        }

    def done(self, state: dict) -> bool:
        return state["issued"] >= self.starts[-1]

    def _stage_ended(self, state: dict, stage: int) -> bool:
        return all(str(i) in state["scores"] for i in range(self.starts[stage], self.starts[stage + 1]))

    def _open_next_stage(self, state: dict) -> None:
        stage = state["stage"]
        scored = [
            (state["params"][str(i)], state["scores"][str(i)])
            for i in range(self.starts[stage], self.starts[stage + 1])
            if state["scores"].get(str(i)) is not None
        ]
        ranges = state["ranges"][stage]
        if scored:
            top = best(scored, self.options.top_fraction)
            ranges = {
                path: domain_json(narrow(parse_domain(ranges[path]), [p[path] for p in top], self.options.widen))
                for path in self.context.space.paths
            }
        # no trial of the stage had a metric: nothing to narrow around, the next stage keeps its ranges
        state["ranges"].append(ranges)
        state["stage"] = stage + 1

    def describe_state(self, state: dict) -> dict:
        stages = []
        for k, stage in enumerate(self.options.stages):
            indices = range(self.starts[k], self.starts[k + 1])
            scores = [state["scores"][str(i)] for i in indices if state["scores"].get(str(i)) is not None]
            stages.append({
                "stage": k + 1,
                "ranges": state["ranges"][k] if k < len(state["ranges"]) else None,
                "epochs": stage.epochs,
                "trials": stage.trials,
                "started": max(0, min(state["issued"], self.starts[k + 1]) - self.starts[k]),
                "ended": sum(1 for i in indices if str(i) in state["scores"]),
                "best": metric_value(self.context.metric, max(scores)) if scores else None,
            })
        return {"stage": state["stage"] + 1, "stages": stages}
