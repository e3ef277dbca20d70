"""``grid``: every point of a finite space (``choice`` and ``int`` domains), once each."""

from __future__ import annotations

from dljobs.search.base import MethodContext, SearchMethod, TrialRequest
from dljobs.search.space import MAX_GRID


class Grid(SearchMethod):
    name = "grid"
    summary = "every combination of a finite space (choice and int domains), the last path varying fastest"

    @classmethod
    def check(cls, options, context: MethodContext) -> list[tuple[str, str]]:
        space = context.space
        if not space.is_finite():
            wide = [p for p, d in space.domains.items() if not hasattr(d, "count")]
            return [(f"space.{p}", "a grid needs choice or int domains; use random for uniform and loguniform")
                    for p in wide]
        if space.size() > MAX_GRID:
            return [("space", f"the grid has {space.size()} points, more than {MAX_GRID}")]
        return []

    def planned_trials(self):
        return self.context.space.grid()

    def initial_state(self) -> dict:
        return {"issued": 0}

    def suggest(self, state: dict, n_free: int) -> list[TrialRequest]:
        points = self.context.space.grid()
        start = state["issued"]
        chosen = points[start:start + n_free]
        state["issued"] = start + len(chosen)
        return [TrialRequest(params=p) for p in chosen]

    def done(self, state: dict) -> bool:
        return state["issued"] >= self.context.space.size()
