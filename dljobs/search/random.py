"""``random``: ``trials`` independent draws from the space (CS231n: better than a grid)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dljobs.search.base import SearchMethod, TrialRequest, trial_rng


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "6" and true are no numbers
    trials: int = Field(10, ge=1, le=1000, description="how many trials to run")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the draws depend on this alone")


class Random(SearchMethod):
    name = "random"
    summary = "independent random draws from every domain (trials, seed)"
    Options = RandomOptions

    def initial_state(self) -> dict:
        return {"issued": 0}

    def suggest(self, state: dict, n_free: int) -> list[TrialRequest]:
        out = []
        while len(out) < n_free and state["issued"] < self.options.trials:
            rng = trial_rng(self.options.seed, state["issued"])
            out.append(TrialRequest(params=self.context.space.sample(rng)))
            state["issued"] += 1
        return out

    def done(self, state: dict) -> bool:
        return state["issued"] >= self.options.trials
