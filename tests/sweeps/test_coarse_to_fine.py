"""coarse_to_fine as the scheduler drives it, with no database: stages, narrowing, restarts."""

from __future__ import annotations

import copy
import json
import math

import pytest
from pydantic import ValidationError

from dljobs.search.base import MethodContext, Trial
from dljobs.search.coarse_to_fine import (
    EPOCHS_PATH,
    CoarseToFine,
    CoarseToFineOptions,
    best,
    narrow,
)
from dljobs.search.space import Choice, IntRange, LogUniform, SearchSpace, Uniform

BASE = {"dataset": {"type": "digits"}, "model": {"layers": [{"type": "affine", "units": 10}]},
        "optimizer": {"type": "sgd", "lr": 0.01}, "training": {"epochs": 3}}
SPACE = {"optimizer.lr": {"loguniform": [1e-5, 1.0]}, "optimizer.type": {"choice": ["sgd", "adam", "momentum"]}}


def method(options: dict | None = None, space: dict = SPACE) -> CoarseToFine:
    context = MethodContext(space=SearchSpace.parse(space, BASE), max_epochs=3)
    return CoarseToFine(CoarseToFineOptions.model_validate(options or {}), context)


def score(params: dict) -> float:
    """A made-up objective peaked at lr = 1e-2 with adam: higher is better."""
    return -abs(math.log10(params["optimizer.lr"]) + 2.0) + (0.5 if params["optimizer.type"] == "adam" else 0.0)


def drive(m: CoarseToFine, state: dict, n_free: int = 3, stop_after: int | None = None) -> list[Trial]:
    """Suggest and end trials as the scheduler would (each ends before the next round); the state
    goes through JSON after every call, as it does through the database."""
    trials: list[Trial] = []
    while not m.done(state) and (stop_after is None or len(trials) < stop_after):
        requests = m.suggest(state, n_free)
        state = json.loads(json.dumps(state))
        assert requests, "suggest gave nothing while every trial had ended"
        for request in requests:
            trial = Trial(index=len(trials), params=request.params, epochs=request.epochs)
            trials.append(trial)
            m.on_trial_end(state, trial, score(trial.params))
            state = json.loads(json.dumps(state))
    drive.state = state
    return trials


def test_stage_one_draws_over_the_whole_space_and_stage_two_inside_the_best_quarters_span():
    m = method({"stages": [{"trials": 12, "epochs": 1}, {"trials": 6, "epochs": 4}], "seed": 3})
    trials = drive(m, m.initial_state())
    state = drive.state
    assert len(trials) == 18
    coarse, fine = trials[:12], trials[12:]
    assert {t.params[EPOCHS_PATH] for t in coarse} == {1} and {t.params[EPOCHS_PATH] for t in fine} == {4}
    top = best([(t.params, score(t.params)) for t in coarse], 0.25)
    assert len(top) == 3
    lrs = [math.log(p["optimizer.lr"]) for p in top]
    pad = 0.05 * (math.log(1.0) - math.log(1e-5))
    low, high = state["ranges"][1]["optimizer.lr"]["loguniform"]
    assert math.log(low) == pytest.approx(max(math.log(1e-5), min(lrs) - pad))
    assert math.log(high) == pytest.approx(min(0.0, max(lrs) + pad))
    assert state["ranges"][1]["optimizer.type"]["choice"] == [
        c for c in ["sgd", "adam", "momentum"] if c in {p["optimizer.type"] for p in top}]
    for t in fine:
        assert low <= t.params["optimizer.lr"] <= high
        assert t.params["optimizer.type"] in state["ranges"][1]["optimizer.type"]["choice"]
    # the fine stage's range is narrower than the whole space, in log space
    assert math.log(high / low) < math.log(1.0 / 1e-5)


def test_the_description_shows_every_stage_with_its_ranges_epochs_and_counts():
    m = method({"stages": [{"trials": 4, "epochs": 1}, {"trials": 2, "epochs": 2}]})
    state = m.initial_state()
    described = m.describe_state(state)
    assert described["stage"] == 1
    assert described["stages"][0] == {"stage": 1, "ranges": SPACE, "epochs": 1, "trials": 4,
                                      "started": 0, "ended": 0, "best": None}
    assert described["stages"][1]["ranges"] is None  # not known before stage 1 has ended
    drive(m, state)
    done = m.describe_state(drive.state)
    assert [s["ended"] for s in done["stages"]] == [4, 2]
    assert done["stages"][1]["ranges"]["optimizer.lr"]["loguniform"][0] >= 1e-5
    # the best of each stage in the metric's own terms (val_accuracy: the score as it is)
    assert done["stages"][0]["best"] == max(drive.state["scores"][str(i)] for i in range(4))
    json.dumps(done)  # it goes into the API's answer as it is


def test_stage_two_waits_for_every_result_of_stage_one():
    m = method({"stages": [{"trials": 3, "epochs": 1}, {"trials": 3, "epochs": 2}]})
    state = m.initial_state()
    first = m.suggest(state, 5)
    assert len(first) == 3  # never more than the stage has, whatever is free
    assert m.suggest(state, 5) == []  # no result yet: nothing to narrow around
    for i, r in enumerate(first[:2]):
        m.on_trial_end(state, Trial(index=i, params=r.params), score(r.params))
    assert m.suggest(state, 5) == []
    m.on_trial_end(state, Trial(index=2, params=first[2].params), None)  # failed: ended, unranked
    second = m.suggest(state, 5)
    assert [r.params[EPOCHS_PATH] for r in second] == [2, 2, 2]
    assert m.done(state)


def test_a_restart_between_any_two_calls_gives_the_same_trials():
    options = {"stages": [{"trials": 6, "epochs": 1}, {"trials": 4, "epochs": 2}], "seed": 11}
    straight = drive(method(options), method(options).initial_state())
    m = method(options)
    partial = drive(m, m.initial_state(), stop_after=7)
    resumed = drive(method(options), copy.deepcopy(drive.state))  # a new process: a new method object
    assert [t.params for t in partial + resumed] == [t.params for t in straight]


def test_a_stage_with_no_metric_at_all_keeps_its_ranges():
    m = method({"stages": [{"trials": 2, "epochs": 1}, {"trials": 2, "epochs": 2}]})
    state = m.initial_state()
    for i, r in enumerate(m.suggest(state, 2)):
        m.on_trial_end(state, Trial(index=i, params=r.params), None)
    m.suggest(state, 2)
    assert state["ranges"][1] == state["ranges"][0]


@pytest.mark.parametrize(("domain", "values", "expected"), [
    (Uniform(uniform=(0.0, 10.0)), [2.0, 4.0], (1.5, 4.5)),
    (Uniform(uniform=(0.0, 10.0)), [0.1], (0.0, 0.6)),  # clipped to the old range
    (IntRange(int=(1, 100)), [10, 20], (5, 25)),  # pad 4.95: 5.05 and 24.95, outwards to whole numbers
    (LogUniform(loguniform=(1e-4, 1.0)), [1e-2], (1e-2 * 10 ** -0.2, 1e-2 * 10 ** 0.2)),
])
def test_narrow_takes_the_span_widened_by_a_share_of_the_old_width(domain, values, expected):
    narrowed = narrow(domain, values, 0.05)
    low, high = narrowed.bounds
    assert type(narrowed) is type(domain)
    assert (low, high) == pytest.approx(expected)


def test_narrow_keeps_the_choices_the_best_used_in_their_order():
    assert narrow(Choice(choice=[1, 2, 3, 4]), [4, 2], 0.05).choice == [2, 4]
    assert narrow(Choice(choice=[{"type": "l2"}, None]), [None], 0.0).choice == [None]


def test_options_are_typed_and_checked():
    with pytest.raises(ValidationError, match="at least 2"):
        CoarseToFineOptions.model_validate({"stages": [{"trials": 4, "epochs": 1}]})
    with pytest.raises(ValidationError, match="trials"):
        CoarseToFineOptions.model_validate({"stages": [{"trials": 0, "epochs": 1}, {"trials": 1, "epochs": 1}]})
    with pytest.raises(ValidationError):
        CoarseToFineOptions.model_validate({"top_fraction": 0})
    with pytest.raises(ValidationError, match="Extra inputs"):
        CoarseToFineOptions.model_validate({"trials": 5})
    with pytest.raises(ValidationError, match="1200 trials, more than 1000"):
        CoarseToFineOptions.model_validate({"stages": [{"trials": 600, "epochs": 1}, {"trials": 600, "epochs": 2}]})


def test_a_space_that_sets_the_epochs_itself_is_refused_with_its_field():
    space = {**SPACE, "training.epochs": {"int": [1, 5]}}
    context = MethodContext(space=SearchSpace.parse(space, BASE), max_epochs=3)
    assert CoarseToFine.check(CoarseToFineOptions(), context) == [
        ("space.training.epochs", "coarse_to_fine sets each trial's training.epochs from its stage's epochs")]


@pytest.mark.parametrize(("method_body", "space", "field"), [
    ({"type": "coarse_to_fine"}, {"training.epochs": {"int": [1, 5]}}, "space.training.epochs"),
    ({"type": "coarse_to_fine", "stages": [{"trials": 4, "epochs": 1}]}, None, "method.stages"),
    ({"type": "coarse_to_fine", "stages": [{"trials": 4, "epochs": 1}, {"trials": 2}]}, None, "method.stages[1].epochs"),
    ({"type": "coarse_to_fine", "widen": 2}, None, "method.widen"),
])
def test_the_api_refuses_a_bad_coarse_to_fine_sweep_naming_the_field(client, mlp_spec, problem, sent,
                                                                    method_body, space, field):
    body = {"name": "c2f", "base": mlp_spec(epochs=1), "space": space or {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": method_body, "metric": "val_accuracy", "max_concurrent": 2}
    problem(client.post("/api/v1/sweeps", json=body), 422, field)
    assert sent == []


def test_a_coarse_to_fine_sweep_starts_its_first_stage_and_shows_its_stages(client, mlp_spec, sent):
    body = {"name": "c2f", "base": mlp_spec(epochs=7), "space": {"optimizer.lr": {"loguniform": [1e-3, 1.0]}},
            "method": {"type": "coarse_to_fine", "stages": [{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 2}]},
            "metric": "val_loss", "max_concurrent": 5}
    resp = client.post("/api/v1/sweeps", json=body)
    assert resp.status_code == 201, resp.get_json()
    sweep = resp.get_json()
    assert len(sent) == 3  # five slots free, but stage 2 waits for stage 1's results
    specs = [client.get(f"/api/v1/jobs/{job_id}").get_json()["spec"] for job_id in sent]
    assert [s["training"]["epochs"] for s in specs] == [1, 1, 1]
    stages = sweep["method_state"]["stages"]
    assert [(s["trials"], s["epochs"], s["started"]) for s in stages] == [(3, 1, 3), (2, 2, 0)]
    assert stages[0]["ranges"] == body["space"] and stages[1]["ranges"] is None


def test_a_val_loss_sweep_shows_each_stages_lowest_loss():
    context = MethodContext(space=SearchSpace.parse(SPACE, BASE), max_epochs=3, metric="val_loss")
    m = CoarseToFine(CoarseToFineOptions.model_validate({"stages": [{"trials": 2, "epochs": 1},
                                                                    {"trials": 1, "epochs": 2}]}), context)
    state = m.initial_state()
    for i, (request, loss) in enumerate(zip(m.suggest(state, 2), (0.7, 0.4), strict=True)):
        m.on_trial_end(state, Trial(index=i, params=request.params), -loss)  # scores: loss negated
    assert m.describe_state(state)["stages"][0]["best"] == 0.4
