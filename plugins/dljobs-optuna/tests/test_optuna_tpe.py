"""The tpe method as the sweep scheduler drives it, with no database: installs, draws, restarts."""

from __future__ import annotations

import json
import math

import pytest
from dljobs_optuna.tpe import TPE, TPEOptions
from optuna.trial import TrialState
from pydantic import ValidationError

from dljobs.search.base import MethodContext, Trial
from dljobs.search.registry import default_methods
from dljobs.search.space import SearchSpace

BASE = {"dataset": {"type": "digits"}, "model": {"layers": [{"type": "affine", "units": 10}]},
        "optimizer": {"type": "sgd", "lr": 0.01}, "regularization": [{"type": "l2", "strength": 0.0}],
        "training": {"epochs": 1}}
SPACE = {
    "optimizer.lr": {"loguniform": [1e-5, 1.0]},
    "regularization[0].strength": {"uniform": [0.0, 1.0]},
    "training.batch_size": {"int": [8, 256]},
    "model.layers": {"choice": [[{"type": "affine", "units": 10}],
                                [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]]},
}


def method(**options) -> TPE:
    return TPE(TPEOptions(**options), MethodContext(space=SearchSpace.parse(SPACE, BASE), max_epochs=1))


def score(params: dict) -> float:
    """A made-up objective, best at lr = 1e-2 and no regularization: higher is better."""
    return -abs(math.log10(params["optimizer.lr"]) + 2.0) - 2.0 * params["regularization[0].strength"]


def drive(m: TPE, n_free: int = 2) -> list[tuple[dict, float]]:
    """Ask and tell as the scheduler does, the state through JSON after every call (the database)."""
    state, results = m.initial_state(), []
    while not m.done(state):
        requests = m.suggest(state, n_free)
        state = json.loads(json.dumps(state))
        for request in requests:
            trial = Trial(index=len(results), params=request.params)
            results.append((request.params, score(request.params)))
            m.on_trial_end(state, trial, results[-1][1])
            state = json.loads(json.dumps(state))
    return results


def test_the_entry_point_makes_tpe_a_search_method_like_the_built_ins():
    entry = next(e for e in default_methods().by_name["tpe"] if e.distribution == "dljobs-optuna")
    assert entry.error is None and entry.cls is TPE
    row = entry.describe()
    assert set(row["params"]["properties"]) == {"trials", "seed", "n_startup_trials"}
    assert default_methods().get("dljobs-optuna:tpe") is TPE


def test_every_draw_is_inside_its_domain_and_choices_come_back_as_their_values():
    results = drive(method(trials=12, n_startup_trials=4, seed=1))
    assert len(results) == 12
    for params, _ in results:
        assert 1e-5 <= params["optimizer.lr"] <= 1.0
        assert 0.0 <= params["regularization[0].strength"] <= 1.0
        assert isinstance(params["training.batch_size"], int) and 8 <= params["training.batch_size"] <= 256
        assert params["model.layers"] in SPACE["model.layers"]["choice"]
        SearchSpace.parse(SPACE, BASE).apply(BASE, params)  # a spec a trial can be


def test_after_its_startup_trials_tpe_draws_better_points_than_the_random_ones():
    results = drive(method(trials=30, n_startup_trials=8, seed=5))
    startup = [s for _p, s in results[:8]]
    modelled = [s for _p, s in results[8:]]
    assert sorted(modelled)[len(modelled) // 2] > sorted(startup)[len(startup) // 2]
    assert max(modelled) > max(startup)


def test_the_same_state_gives_the_same_draws_in_a_new_process_and_no_draw_twice():
    a, b = method(trials=10, n_startup_trials=3, seed=2), method(trials=10, n_startup_trials=3, seed=2)
    assert drive(a) == drive(b)  # b: a new method object, as after a restart
    draws = [p["optimizer.lr"] for p, _ in drive(a)]
    assert len(set(draws)) == len(draws)


def test_concurrent_asks_are_kept_apart_and_running_trials_are_in_the_rebuilt_study():
    m = method(trials=6, n_startup_trials=2)
    state = m.initial_state()
    first = m.suggest(state, 3)
    assert len({r.params["optimizer.lr"] for r in first}) == 3
    assert len(m.study(state).get_trials(states=(TrialState.RUNNING,))) == 3
    m.on_trial_end(state, Trial(index=1, params=first[1].params), None)  # failed: told, with no score
    assert sorted(state["running"]) == ["0", "2"] and state["ended"]["1"][1] is None
    assert len(m.suggest(state, 10)) == 3  # never past `trials`
    assert m.done(state) and m.suggest(state, 1) == []
    assert m.describe_state(state) == {"asked": 6, "told": 1, "startup_trials": 2, "best": None}


def test_options_are_typed_and_checked():
    with pytest.raises(ValidationError):
        TPEOptions(trials=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        TPEOptions.model_validate({"trials": 3, "sampler": "cmaes"})


def test_a_rerun_of_a_trial_replaces_its_result_in_the_study():
    m = method(trials=3, n_startup_trials=2)
    state = m.initial_state()
    first = m.suggest(state, 1)[0]
    trial = Trial(index=0, params=first.params)
    m.on_trial_end(state, trial, None)  # failed
    m.on_trial_end(state, trial, 0.5)  # its rerun succeeded: the same trial, its newest result
    assert state["ended"] == {"0": [state["ended"]["0"][0], 0.5]}
    completed = m.study(state).get_trials(states=(TrialState.COMPLETE,))
    assert [t.value for t in completed] == [0.5]
    assert m.describe_state(state)["told"] == 1


def test_a_stored_result_outside_its_domain_is_left_out_of_the_study_not_fatal():
    m = method(trials=4, n_startup_trials=2)
    state = m.initial_state()
    m.suggest(state, 1)
    state["ended"]["9"] = [{**state["running"]["0"], "optimizer.lr": 5.0}, 0.3]  # 5 > the domain's 1
    assert len(m.study(state).trials) == 1  # the running trial; the bad record is skipped
    assert len(m.suggest(state, 1)) == 1
