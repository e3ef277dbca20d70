"""bench/sweeps.py's inputs and arithmetic: its specs and spaces are valid, its sums are the
leaderboard's (the figures themselves come from real sweeps in `make bench`)."""

from __future__ import annotations

import copy

from bench import sweeps
from dlcore.spec import validate
from dljobs.search.space import SearchSpace


def test_the_base_spec_and_every_point_of_the_space_are_valid_trials():
    space = SearchSpace.parse(sweeps.SPACE, sweeps.BASE)
    validate(sweeps.BASE)
    for low_high in ({p: d.bounds[0] for p, d in space.domains.items()},
                     {p: d.bounds[1] for p, d in space.domains.items()}):
        validate(space.apply(sweeps.BASE, low_high))
    nine = copy.deepcopy(sweeps.BASE)
    nine["training"]["epochs"] = 9
    validate(nine)


def test_scores_skip_trials_without_a_metric_and_epochs_add_up():
    answer = {"leaderboard": [
        {"job_id": "a", "val_accuracy": 0.9, "epochs": 9},
        {"job_id": "b", "val_accuracy": 0.5, "epochs": 1},
        {"job_id": "c", "val_accuracy": None, "epochs": None, "reason": "invalid sample"},
    ]}
    assert sweeps.scores(answer) == [0.9, 0.5]
    assert sweeps.epochs_trained(answer) == 10
