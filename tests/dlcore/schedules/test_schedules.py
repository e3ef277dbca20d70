"""Schedules: 100-iteration trajectories against torch.optim.lr_scheduler, warm-up, configs."""

import math

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.schedules.constant import Constant
from dlcore.schedules.cosine import Cosine
from dlcore.schedules.exponential import Exponential
from dlcore.schedules.inverse_time import InverseTime
from dlcore.schedules.step import Step

LR0 = 0.1
ITERATIONS = 100
PER_EPOCH = 5  # iterations per epoch: t = iteration / PER_EPOCH is fractional


def ours(schedule):
    return np.array([schedule.lr(LR0, i / PER_EPOCH) for i in range(ITERATIONS)])


def torch_trajectory(torch, make_scheduler):
    """The lr torch's scheduler gives at each iteration, stepped once per iteration."""
    param = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([param], lr=LR0)
    scheduler = make_scheduler(opt)
    out = []
    for _ in range(ITERATIONS):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return np.array(out)


def assert_same(a, b):
    assert np.max(np.abs(a - b) / np.abs(b)) < 1e-10


@pytest.mark.torch
def test_constant_matches_constantlr():
    torch = pytest.importorskip("torch")
    expected = torch_trajectory(
        torch, lambda opt: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    )
    assert_same(ours(Constant()), expected)


@pytest.mark.torch
def test_constant_with_warmup_matches_lambdalr():
    torch = pytest.importorskip("torch")
    warmup = 3.0  # torch's LinearLR cannot start at 0, so the ramp is written as a LambdaLR
    expected = torch_trajectory(
        torch,
        lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: min(1.0, i / PER_EPOCH / warmup)
        ),
    )
    got = ours(Constant(warmup_epochs=warmup))
    assert got[0] == expected[0] == 0
    assert_same(got[1:], expected[1:])


@pytest.mark.torch
@pytest.mark.parametrize("step_size, gamma", [(3, 0.5), (1, 0.9)])
def test_step_matches_steplr(step_size, gamma):
    torch = pytest.importorskip("torch")
    expected = torch_trajectory(
        torch,
        lambda opt: torch.optim.lr_scheduler.StepLR(
            opt, step_size=step_size * PER_EPOCH, gamma=gamma
        ),
    )
    assert_same(ours(Step(step_size=step_size, gamma=gamma)), expected)


@pytest.mark.torch
@pytest.mark.parametrize("k", [0.05, 0.3])
def test_exponential_matches_exponentiallr(k):
    torch = pytest.importorskip("torch")
    # Per iteration the factor is exp(-k / PER_EPOCH); per epoch exp(-k).
    expected = torch_trajectory(
        torch,
        lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=math.exp(-k / PER_EPOCH)),
    )
    assert_same(ours(Exponential(k=k)), expected)


@pytest.mark.torch
@pytest.mark.parametrize("min_factor", [0.0, 0.1])
def test_cosine_matches_cosineannealinglr(min_factor):
    torch = pytest.importorskip("torch")
    t_max = ITERATIONS // PER_EPOCH  # anneal over exactly the 100 iterations
    expected = torch_trajectory(
        torch,
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=t_max * PER_EPOCH, eta_min=min_factor * LR0
        ),
    )
    got = ours(Cosine(t_max=t_max, min_factor=min_factor))
    if min_factor == 0:
        # Near the end the rate nears 0; compare relative to lr0 there.
        assert np.max(np.abs(got - expected)) / LR0 < 1e-10
    else:
        assert_same(got, expected)


@pytest.mark.torch
@pytest.mark.parametrize("k", [0.1, 2.0])
def test_inverse_time_matches_lambdalr(k):
    torch = pytest.importorskip("torch")
    expected = torch_trajectory(
        torch,
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 / (1 + k * i / PER_EPOCH)),
    )
    assert_same(ours(InverseTime(k=k)), expected)


@pytest.mark.torch
def test_warmup_matches_lambdalr():
    torch = pytest.importorskip("torch")
    warmup, step_size, gamma = 2.0, 4, 0.5

    def factor(i):
        t = i / PER_EPOCH
        return min(1.0, t / warmup) * gamma ** (i // (step_size * PER_EPOCH))

    expected = torch_trajectory(torch, lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor))
    got = ours(Step(step_size=step_size, gamma=gamma, warmup_epochs=warmup))
    assert got[0] == expected[0] == 0
    assert_same(got[1:], expected[1:])


@pytest.mark.parametrize(
    "schedule",
    [
        Constant(),
        Step(step_size=2, gamma=0.5),
        Exponential(k=0.3),
        InverseTime(k=1.0),
        Cosine(t_max=8),
    ],
    ids=lambda s: s.name,
)
def test_warmup_ramps_linearly_to_the_decayed_value(schedule):
    warm = type(schedule)({**schedule.hyperparameters(), "warmup_epochs": 2.0})
    for t in [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 7.5]:
        expected = schedule.lr(LR0, t) * min(1.0, t / 2.0)
        assert warm.lr(LR0, t) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert schedule.lr(LR0, 0.0) == LR0  # no warm-up: starts at the base rate


def test_formulas_at_fractional_epochs():
    assert Constant().lr(0.3, 12.7) == 0.3
    assert Step(step_size=1.5, gamma=0.1).lr(1.0, 2.9) == pytest.approx(0.1)
    assert Step(step_size=1.5, gamma=0.1).lr(1.0, 3.0) == pytest.approx(0.01)
    assert Step(step_size=0.3, gamma=0.5).lr(1.0, 10 * 3 / 10) == pytest.approx(0.5**10)
    assert Exponential(k=0.2).lr(2.0, 2.5) == pytest.approx(2.0 * math.exp(-0.5))
    assert InverseTime(k=0.5).lr(1.0, 0.5) == pytest.approx(0.8)
    assert Cosine(t_max=4).lr(1.0, 2.0) == pytest.approx(0.5)


def test_cosine_stays_at_its_floor_after_t_max():
    schedule = Cosine(t_max=3, min_factor=0.2)
    assert schedule.lr(1.0, 3.0) == pytest.approx(0.2)
    assert schedule.lr(1.0, 3.5) == pytest.approx(0.2)
    assert schedule.lr(1.0, 100.0) == pytest.approx(0.2)


BAD = [
    (Step, {"step_size": 0}, "step_size"),
    (Step, {"gamma": 0}, "gamma"),
    (Step, {"gamma": 1.5}, "gamma"),
    (Exponential, {"k": -0.1}, "k"),
    (InverseTime, {"k": -1}, "k"),
    (Cosine, {"t_max": 0}, "t_max"),
    (Cosine, {}, "t_max"),
    (Cosine, {"t_max": 5, "min_factor": 2}, "min_factor"),
    (Constant, {"warmup_epochs": -1}, "warmup_epochs"),
    (Constant, {"gamma": 0.5}, "gamma"),
]


@pytest.mark.parametrize("cls, config, field", BAD, ids=[f"{c.name}-{f}-{v}" for c, v, f in BAD])
def test_bad_configuration_names_the_field(cls, config, field):
    with pytest.raises(ConfigError) as err:
        cls(config)
    assert err.value.field == field
    assert cls.name in str(err.value)


@pytest.mark.parametrize("cls", [Constant, Step, Exponential, InverseTime, Cosine])
def test_examples_construct_and_round_trip(cls):
    for example in cls.examples:
        schedule = cls(example)
        assert cls(schedule.hyperparameters()).hyperparameters() == schedule.hyperparameters()
        assert 0 <= schedule.lr(1.0, 0.5) <= 1.0
