"""``tpe``: Optuna's Tree-structured Parzen Estimator as a dljobs search method.

dljobs keeps the method's state in the sweep's row (JSON), never in a process, so the Optuna
study is not kept either: every ``suggest`` rebuilds an in-memory study from the state (each
ended trial with its params and score, each running trial as running, so TPE's constant liar
keeps concurrent draws apart) and asks it for new points.  A restart of the API or of every
worker loses nothing.  The sampler is seeded from ``seed`` and the number of trials asked so
far, so a rebuilt study never repeats an earlier draw and the same history gives the same
suggestions.

Optuna sees each path under its own name (``optimizer.lr``); a ``choice`` becomes a categorical
over the indices of its values, so any JSON value (a list, an object) can be a choice.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial
from pydantic import BaseModel, ConfigDict, Field

from dljobs.search.base import MethodContext, SearchMethod, Trial, TrialRequest, metric_value
from dljobs.search.space import Choice, Domain, IntRange, LogUniform, SearchSpace, Uniform


class TPEOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trials: int = Field(20, ge=1, le=1000, description="how many trials to run")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the sampler's seed: the same results give the same draws")
    n_startup_trials: int = Field(
        5, ge=1, le=1000, description="trials drawn at random before TPE models the results (Optuna's default 10)")


def distribution(domain: Domain) -> BaseDistribution:
    """The Optuna distribution of one dljobs domain (a choice: over the indices of its values)."""
    if isinstance(domain, Choice):
        return CategoricalDistribution(list(range(len(domain.choice))))
    if isinstance(domain, IntRange):
        return IntDistribution(*domain.int_)
    if isinstance(domain, LogUniform):
        return FloatDistribution(*domain.loguniform, log=True)
    if isinstance(domain, Uniform):
        return FloatDistribution(*domain.uniform)
    raise TypeError(f"no Optuna distribution for {type(domain).__name__}")


def to_optuna(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """dljobs params -> Optuna params (a choice's value -> its index)."""
    out = {}
    for path, domain in space.domains.items():
        value = params[path]
        out[path] = domain.choice.index(value) if isinstance(domain, Choice) else value
    return out


def from_optuna(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """Optuna params -> dljobs params, in the space's path order."""
    out = {}
    for path, domain in space.domains.items():
        value = params[path]
        out[path] = domain.choice[value] if isinstance(domain, Choice) else value
    return out


def sampler_seed(seed: int, asked: int) -> int:
    """A seed per call: a study rebuilt with one seed would draw its startup points again and again."""
    return zlib.crc32(f"{seed}:{asked}".encode())


class TPE(SearchMethod):
    name = "tpe"
    summary = "Optuna's TPE sampler: models good and bad results, draws where good ones are likely (trials, seed, n_startup_trials)"
    Options = TPEOptions

    def __init__(self, options: TPEOptions, context: MethodContext):
        super().__init__(options, context)
        self.distributions = {path: distribution(d) for path, d in context.space.domains.items()}

    def initial_state(self) -> dict:
        # by trial index (a string: JSON keys): running, the optuna params of trials asked and not
        # ended; ended, [optuna params, score] of each ended trial (a rerun's result replaces it)
        return {"issued": 0, "running": {}, "ended": {}}

    def study(self, state: dict) -> optuna.Study:
        """An in-memory study holding every trial of the state, sampler seeded for this call."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is no news in a worker's log
        sampler = optuna.samplers.TPESampler(
            seed=sampler_seed(self.options.seed, state["issued"]),
            n_startup_trials=self.options.n_startup_trials,
            constant_liar=True,  # Optuna 5's default, not 4's: running trials repel new draws
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)  # scores: higher is better
        told = [(params, TrialState.FAIL if score is None else TrialState.COMPLETE, score)
                for params, score in state["ended"].values()]
        told += [(params, TrialState.RUNNING, None) for params in state["running"].values()]
        trials = []
        for params, trial_state, score in told:
            try:
                trials.append(create_trial(params=params, distributions=self.distributions,
                                           state=trial_state, value=score))
            except ValueError:  # a value outside its distribution: one bad record never stalls the sweep
                continue
        study.add_trials(trials)
        return study

    def suggest(self, state: dict, n_free: int) -> list[TrialRequest]:
        n = min(n_free, self.options.trials - state["issued"])
        if n <= 0:
            return []
        out = []
        with warnings.catch_warnings():
            # the constant liar and fixed-distribution ask are marked experimental in some releases
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = self.study(state)
            for _ in range(n):
                asked = study.ask(self.distributions)
                params = {path: asked.params[path] for path in self.distributions}
                state["running"][str(state["issued"])] = params
                state["issued"] += 1
                out.append(TrialRequest(params=from_optuna(self.context.space, params)))
        return out

    def on_trial_end(self, state: dict, trial: Trial, score: float | None) -> None:
        key = str(trial.index)
        params = state["running"].pop(key, None)
        if params is None:  # a rerun of an ended trial: its newest result is the one told
            try:
                params = to_optuna(self.context.space, trial.params)
            except (KeyError, ValueError):
                return
        state["ended"][key] = [params, score]

    def done(self, state: dict) -> bool:
        return state["issued"] >= self.options.trials

    def describe_state(self, state: dict) -> dict:
        scores = [s for _p, s in state["ended"].values() if s is not None]
        return {"asked": state["issued"], "told": len(state["ended"]),
                "startup_trials": self.options.n_startup_trials,
                "best": metric_value(self.context.metric, max(scores)) if scores else None}

