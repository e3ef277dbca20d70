"""``asha``: asynchronous successive halving (Li et al., 2020), promotions from checkpoints.

Rungs are at ``min_epochs * reduction**k`` epochs, below ``max_epochs``.  Every trial is a
job whose spec trains ``max_epochs`` epochs, started with a budget of the first rung.  When
it completes the epochs of a rung its score joins that rung's results and it is judged at
once, against the results the rung has so far (no waiting for the whole rung, so no worker
idles): outside the top ``1/reduction`` it is stopped (the job ends ``stopped_early``);
inside, it is promoted: the run checkpoints, goes back to the queue and continues from that
checkpoint to the next rung (or, past the last rung, to ``max_epochs``).  The cut is Ray
Tune's: a score below the ``1 - 1/reduction`` quantile of the rung's results stops the trial,
so the first trial at a rung always goes on.  New trials are drawn as ``random`` draws them.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dljobs.search.base import Decision, MethodContext, SearchMethod, Trial, TrialRequest, trial_rng


class AshaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "6" and true are no numbers
    trials: int = Field(27, ge=1, le=1000, description="how many trials to start")
    min_epochs: int = Field(1, ge=1, le=10_000, description="the first rung")
    max_epochs: int = Field(9, ge=1, le=10_000, description="the budget of a trial never stopped")
    reduction: int = Field(3, ge=2, le=100, description="keep the top 1/reduction at each rung")
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) is above max_epochs ({self.max_epochs})")
        return self


def rungs(min_epochs: int, max_epochs: int, reduction: int) -> list[int]:
    """The epochs at which trials are judged: ``[1, 3]`` for 1, 9, 3 (9 is the end, not a rung)."""
    out, epochs = [], min_epochs
    while epochs < max_epochs:
        out.append(epochs)
        epochs *= reduction
    return out


class Asha(SearchMethod):
    name = "asha"
    summary = "asynchronous successive halving: stop trials outside the top 1/reduction at each rung"
    Options = AshaOptions

    def __init__(self, options: AshaOptions, context: MethodContext):
        super().__init__(options, context)
        self.rungs = rungs(options.min_epochs, options.max_epochs, options.reduction)

    def spec_overrides(self) -> dict:
        return {"training.epochs": self.options.max_epochs}

    def initial_state(self) -> dict:
        return {"issued": 0, "rungs": [[] for _ in self.rungs], "decided": {}}

    def suggest(self, state: dict, n_free: int) -> list[TrialRequest]:
        out = []
        first = self.rungs[0] if self.rungs else None
        while len(out) < n_free and state["issued"] < self.options.trials:
            rng = trial_rng(self.options.seed, state["issued"])
            out.append(TrialRequest(params=self.context.space.sample(rng), epochs=first))
            state["issued"] += 1
        return out

    def on_result(self, state: dict, trial: Trial, epoch: int, score: float | None) -> Decision:
        if epoch not in self.rungs:
            return Decision.CONTINUE
        k = self.rungs.index(epoch)
        key = f"{trial.index}:{k}"
        if key not in state["decided"]:
            results = state["rungs"][k]
            results.append([trial.index, score])
            state["decided"][key] = self._judge(results, score)
        decision = Decision(state["decided"][key])
        if decision == Decision.PROMOTE:
            trial.epochs = self.rungs[k + 1] if k + 1 < len(self.rungs) else None
        return decision

    def _judge(self, results: list, score: float | None) -> str:
        if score is None:
            return Decision.STOP.value
        scores = np.array([s if s is not None else -np.inf for _i, s in results], dtype=float)
        cutoff = np.quantile(scores, 1.0 - 1.0 / self.options.reduction)
        return (Decision.STOP if score < cutoff else Decision.PROMOTE).value

    def done(self, state: dict) -> bool:
        return state["issued"] >= self.options.trials

    def describe_state(self, state: dict) -> dict:
        return {
            "rungs": [
                {"epochs": e, "results": len(state["rungs"][k]),
                 "promoted": sum(1 for key, d in state["decided"].items()
                                 if key.endswith(f":{k}") and d == Decision.PROMOTE)}
                for k, e in enumerate(self.rungs)
            ]
        }
