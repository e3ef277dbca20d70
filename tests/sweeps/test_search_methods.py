"""The search methods and the space alone: pure functions over an explicit state, no Celery."""

from __future__ import annotations

import copy
import json

import pytest

from dlcore.errors import SpecError
from dljobs.search.asha import Asha, AshaOptions, rungs
from dljobs.search.base import Decision, MethodContext, Trial
from dljobs.search.grid import Grid
from dljobs.search.random import Random, RandomOptions
from dljobs.search.registry import default_methods
from dljobs.search.space import SearchSpace

BASE = {"optimizer": {"type": "sgd", "lr": 0.1}, "regularization": [{"type": "l2", "strength": 0.0}],
        "model": {"layers": [{"type": "flatten"}, {"type": "dropout", "p": 0.5}]},
        "training": {"epochs": 3}}


def context(space: dict, max_epochs: int = 3) -> MethodContext:
    return MethodContext(space=SearchSpace.parse(space, base=BASE), max_epochs=max_epochs)


def test_a_path_into_a_section_the_base_leaves_to_its_defaults_makes_that_section():
    base = {k: v for k, v in BASE.items() if k != "training"}
    space = SearchSpace.parse({"training.epochs": {"choice": [2]}}, base=base)
    assert space.apply(base, space.grid()[0])["training"] == {"epochs": 2}
    assert "training" not in base


def test_paths_reach_nested_fields_and_lists():
    space = SearchSpace.parse({"optimizer.lr": {"choice": [0.5]}, "regularization[0].strength": {"choice": [1e-3]},
                               "model.layers[1].p": {"choice": [0.25]}, "optimizer.momentum": {"choice": [0.9]}},
                              base=BASE)
    spec = space.apply(BASE, space.grid()[0])
    assert spec["optimizer"] == {"type": "sgd", "lr": 0.5, "momentum": 0.9}
    assert spec["regularization"][0]["strength"] == 1e-3
    assert spec["model"]["layers"][1]["p"] == 0.25
    assert BASE["optimizer"]["lr"] == 0.1  # the base is copied, never changed


@pytest.mark.parametrize(("space", "field", "words"), [
    ({"optimizer.lr": {"uniform": [1, 0]}}, "space.optimizer.lr", "above the high end"),
    ({"optimizer.lr": {"loguniform": [0, 1]}}, "space.optimizer.lr", "0 < low"),
    ({"optimizer.lr": {"int": [0.5, 2]}}, "space.optimizer.lr", "two integers"),
    ({"optimizer.lr": {"normal": [0, 1]}}, "space.optimizer.lr", "a domain is one of"),
    ({"optimizer.lr": {"choice": []}}, "space.optimizer.lr", "at least 1"),
    ({"optimizer..lr": {"choice": [1]}}, "space.optimizer..lr", "field name"),
    ({"regularization[3].strength": {"choice": [1]}}, "space.regularization[3].strength", "1 item(s)"),
    ({"optimiser.lr": {"choice": [1]}}, "space.optimiser.lr", "no optimiser"),
    ({"optimizer.lr[0]": {"choice": [1]}}, "space.optimizer.lr[0]", "not a list"),
    ({"training.epochs": {"int": [1, 10**30]}}, "space.training.epochs", "int takes ends from"),
])
def test_bad_paths_and_domains_name_the_field(space, field, words):
    with pytest.raises(SpecError) as caught:
        SearchSpace.parse(space, base=BASE)
    [error] = caught.value.errors
    assert error.field == field
    assert words in error.message


def test_grid_enumerates_every_point_once_in_batches():
    method = Grid(Grid.Options(), context({"optimizer.lr": {"choice": [0.1, 0.2, 0.3]}, "model.layers[1].p": {"int": [0, 1]}}))
    state = method.initial_state()
    seen = []
    while not method.done(state):
        seen += [r.params for r in method.suggest(state, 4)]
        state = json.loads(json.dumps(state))  # the state survives a trip through the database
    assert len(seen) == 6
    assert {(p["optimizer.lr"], p["model.layers[1].p"]) for p in seen} == {
        (lr, p) for lr in (0.1, 0.2, 0.3) for p in (0, 1)}
    assert method.suggest(state, 3) == []


def test_a_huge_int_domain_is_never_enumerated():
    space = SearchSpace.parse({"training.epochs": {"int": [1, 2**53]}, "optimizer.lr": {"choice": [0.1, 0.2]}},
                              base=BASE)
    assert space.is_finite() and space.size() == 2**54
    assert Grid.check(Grid.Options(), MethodContext(space=space, max_epochs=3)) == [
        ("space", f"the grid has {2**54} points, more than 1000")]
    draws = Random(RandomOptions(trials=3), MethodContext(space=space, max_epochs=3)).suggest({"issued": 0}, 3)
    assert all(1 <= r.params["training.epochs"] <= 2**53 for r in draws)


def test_grid_refuses_a_continuous_domain():
    ctx = context({"optimizer.lr": {"uniform": [0.1, 1.0]}})
    assert Grid.check(Grid.Options(), ctx) == [
        ("space.optimizer.lr", "a grid needs choice or int domains; use random for uniform and loguniform")]


def test_random_draws_depend_on_the_seed_alone_not_on_batching():
    ctx = context({"optimizer.lr": {"loguniform": [1e-4, 1.0]}, "model.layers[1].p": {"uniform": [0, 0.9]}})
    one = Random(RandomOptions(trials=6, seed=7), ctx)
    state = one.initial_state()
    batched = one.suggest(state, 2) + one.suggest(state, 4)
    single = []
    state2 = one.initial_state()
    while not one.done(state2):
        single += one.suggest(state2, 1)
    assert [r.params for r in batched] == [r.params for r in single]
    assert all(1e-4 <= r.params["optimizer.lr"] <= 1.0 for r in batched)
    other = Random(RandomOptions(trials=6, seed=8), ctx).suggest({"issued": 0}, 6)
    assert [r.params for r in other] != [r.params for r in batched]
    assert one.done(state) and one.suggest(state, 3) == []


def test_asha_rungs_and_the_asynchronous_cut():
    assert rungs(1, 9, 3) == [1, 3]
    assert rungs(1, 27, 3) == [1, 3, 9]
    method = Asha(AshaOptions(trials=4, min_epochs=1, max_epochs=9, reduction=3), context({"optimizer.lr": {"loguniform": [1e-3, 1]}}))
    state = method.initial_state()
    requests = method.suggest(state, 4)
    assert [r.epochs for r in requests] == [1, 1, 1, 1]
    trials = [Trial(i, r.params, r.epochs) for i, r in enumerate(requests)]
    # the first result at a rung always goes on; later ones are judged against what is there
    assert method.on_result(state, trials[0], 1, 0.5) == Decision.PROMOTE and trials[0].epochs == 3
    assert method.on_result(state, trials[1], 1, 0.2) == Decision.STOP
    assert method.on_result(state, trials[2], 1, 0.9) == Decision.PROMOTE
    assert method.on_result(state, trials[3], 1, None) == Decision.STOP  # no metric: stopped
    # asked again (a resumed run replays the epoch): the same answer, recorded once
    again = copy.deepcopy(trials[1])
    assert method.on_result(state, again, 1, 0.95) == Decision.STOP
    assert len(state["rungs"][0]) == 4
    # past the last rung a promoted trial trains to max_epochs
    assert method.on_result(state, trials[2], 3, 0.9) == Decision.PROMOTE and trials[2].epochs is None
    assert method.on_result(state, trials[2], 5, 0.9) == Decision.CONTINUE
    assert method.spec_overrides() == {"training.epochs": 9}


def test_asha_options_are_typed():
    with pytest.raises(ValueError, match="min_epochs"):
        AshaOptions(min_epochs=10, max_epochs=3)
    with pytest.raises(ValueError):
        AshaOptions(reduction=1)


def test_the_built_ins_are_entry_points_listed_like_a_third_party():
    registry = default_methods()
    rows = {row["name"]: row for row in registry.listing()}
    assert {"grid", "random", "asha"} <= set(rows)
    for name in ("grid", "random", "asha"):
        assert rows[name]["distribution"] == "dljobs" and rows[name]["error"] is None
    assert rows["asha"]["params"]["properties"]["reduction"]["minimum"] == 2
    assert registry.get("random") is Random
    assert registry.get("dljobs:grid") is Grid
    with pytest.raises(Exception, match="unknown search method 'bayes'"):
        registry.get("bayes")
