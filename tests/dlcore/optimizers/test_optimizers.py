"""Optimizers: 100-step trajectories against torch.optim, momentum convention, state, configs."""

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.optimizers.adagrad import Adagrad
from dlcore.optimizers.adam import Adam, adam_update
from dlcore.optimizers.momentum import Momentum, momentum_update
from dlcore.optimizers.nesterov import Nesterov, nesterov_update
from dlcore.optimizers.rmsprop import RMSProp
from dlcore.optimizers.sgd import SGD

ALL = [SGD, Momentum, Nesterov, Adagrad, RMSProp, Adam]
STEPS = 100


def least_squares(seed=0):
    """An ill-conditioned least-squares problem 0.5/N * ||X W - Y||^2 + a start point W0 and b0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((20, 5)) * np.array([3.0, 1.0, 1.0, 0.5, 0.1])
    y = rng.standard_normal((20, 3))
    return x, y, rng.standard_normal((5, 3)), rng.standard_normal(3)


def gradients(x, y, w, b):
    """Analytic gradients of 0.5/N * ||x w + b - y||^2 with respect to w and b."""
    residual = (x @ w + b - y) / len(x)
    return {"W": x.T @ residual, "b": residual.sum(axis=0)}


def torch_optimizer(torch, cls, config, params):
    """The torch.optim twin of one of our optimizers, with the same hyperparameters."""
    lr = config["lr"]
    if cls is SGD:
        return torch.optim.SGD(params, lr=lr)
    if cls is Momentum:
        return torch.optim.SGD(params, lr=lr, momentum=config["momentum"])
    if cls is Nesterov:
        return torch.optim.SGD(params, lr=lr, momentum=config["momentum"], nesterov=True)
    if cls is Adagrad:
        return torch.optim.Adagrad(
            params, lr=lr, eps=config["eps"], lr_decay=0, initial_accumulator_value=0
        )
    if cls is RMSProp:
        return torch.optim.RMSprop(params, lr=lr, alpha=config["decay_rate"], eps=config["eps"])
    if cls is Adam:
        return torch.optim.Adam(
            params, lr=lr, betas=(config["beta1"], config["beta2"]), eps=config["eps"]
        )
    raise AssertionError(cls)


CASES = [
    (SGD, {"lr": 0.05}),
    (Momentum, {"lr": 0.02, "momentum": 0.9}),
    (Nesterov, {"lr": 0.02, "momentum": 0.9}),
    (Adagrad, {"lr": 0.3, "eps": 1e-8}),
    # RMSProp's and Adam's steps grow as their second moments decay near the minimum; with
    # too large an lr the iteration turns unstable and rounding differences grow ~6x per
    # step, so any two correct implementations part.  These settings stay stable.
    (RMSProp, {"lr": 0.01, "decay_rate": 0.99, "eps": 1e-8}),
    (RMSProp, {"lr": 0.003, "decay_rate": 0.9, "eps": 1e-8}),
    (Adam, {"lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    (Adam, {"lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6}),
]


@pytest.mark.torch
@pytest.mark.parametrize(
    "cls, config", CASES, ids=[f"{c.name}-{i}" for i, (c, _) in enumerate(CASES)]
)
def test_trajectory_matches_torch_optim(cls, config):
    torch = pytest.importorskip("torch")
    x, y, w0, b0 = least_squares()
    params = {"W": w0.copy(), "b": b0.copy()}
    opt = cls(config)

    t_w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    t_b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    t_x, t_y = torch.tensor(x), torch.tensor(y)
    t_opt = torch_optimizer(torch, cls, config, [t_w, t_b])

    worst = 0.0
    for _ in range(STEPS):
        opt.step(params, gradients(x, y, params["W"], params["b"]))
        t_opt.zero_grad()
        (0.5 * ((t_x @ t_w + t_b - t_y) ** 2).sum() / len(x)).backward()
        t_opt.step()
        for ours, theirs in ((params["W"], t_w), (params["b"], t_b)):
            theirs = theirs.detach().numpy()
            worst = max(worst, np.abs(ours - theirs).max() / np.abs(theirs).max())
    assert worst < 1e-10
    # The problem was actually optimized, so the trajectories compared are not trivial.
    start = gradients(x, y, w0, b0)["W"]
    assert np.abs(gradients(x, y, params["W"], params["b"])["W"]).max() < np.abs(start).max()


def test_momentum_follows_cs231n_formula_when_lr_changes():
    rng = np.random.default_rng(1)
    w = rng.standard_normal(4)
    w_ref, v_ref = w.copy(), np.zeros(4)
    slots = {}
    for step in range(20):
        lr = 0.1 / (1 + step)
        dw = rng.standard_normal(4)
        momentum_update(w, dw, slots, lr, 0.8)
        v_ref = 0.8 * v_ref - lr * dw
        w_ref = w_ref + v_ref
        np.testing.assert_allclose(w, w_ref, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(slots["velocity"], v_ref, rtol=1e-13, atol=1e-15)


def test_nesterov_follows_cs231n_lookahead_formula_when_lr_changes():
    rng = np.random.default_rng(2)
    w = rng.standard_normal(4)
    w_ref, v_ref = w.copy(), np.zeros(4)
    slots = {}
    for step in range(20):
        lr = 0.1 / (1 + step)
        dw = rng.standard_normal(4)
        nesterov_update(w, dw, slots, lr, 0.8)
        v_prev = v_ref
        v_ref = 0.8 * v_ref - lr * dw
        w_ref = w_ref - 0.8 * v_prev + 1.8 * v_ref
        np.testing.assert_allclose(w, w_ref, rtol=1e-12, atol=1e-14)


def test_adam_first_step_is_lr_times_sign():
    # After bias correction the first step is lr * dw / (|dw| + eps): lr in each coordinate.
    w = np.zeros(3)
    adam_update(w, np.array([1e-3, -5.0, 2.0]), {}, 0.01)
    np.testing.assert_allclose(w, [-0.01, 0.01, -0.01], rtol=1e-4)


@pytest.mark.parametrize("cls", ALL)
def test_float32_parameters_stay_float32(cls):
    x, y, w0, b0 = least_squares()
    params = {"W": w0.astype(np.float32), "b": b0.astype(np.float32)}
    ids = {k: id(v) for k, v in params.items()}
    opt = cls()
    for _ in range(3):
        grads = {
            k: v.astype(np.float32) for k, v in gradients(x, y, params["W"], params["b"]).items()
        }
        before = {k: g.copy() for k, g in grads.items()}
        opt.step(params, grads)
        for k, g in grads.items():
            np.testing.assert_array_equal(g, before[k])  # gradients are not modified
    for k, v in params.items():
        assert v.dtype == np.float32 and id(v) == ids[k]  # updated in place
    for slot in opt.slots["W"].values():
        assert slot.dtype in (np.float32, np.int64)
    assert not np.allclose(params["W"], w0, atol=1e-6)


@pytest.mark.parametrize("cls", ALL)
def test_state_dict_resume_gives_identical_trajectory(cls):
    x, y, w0, b0 = least_squares(3)
    straight = {"W": w0.copy(), "b": b0.copy()}
    opt = cls()
    for _ in range(10):
        opt.step(straight, gradients(x, y, straight["W"], straight["b"]), lr=0.01)

    resumed = {"W": w0.copy(), "b": b0.copy()}
    first = cls()
    for _ in range(5):
        first.step(resumed, gradients(x, y, resumed["W"], resumed["b"]), lr=0.01)
    saved = {k: np.array(v) for k, v in first.state_dict().items()}
    second = cls()
    second.load_state_dict(saved)
    for _ in range(5):
        second.step(resumed, gradients(x, y, resumed["W"], resumed["b"]), lr=0.01)

    assert second.t == opt.t == 10
    for k, w in straight.items():
        np.testing.assert_array_equal(resumed[k], w)


BAD = [
    (SGD, {"lr": -0.1}, "lr"),
    (SGD, {"lr": 0}, "lr"),
    (Momentum, {"momentum": 1.0}, "momentum"),
    (Momentum, {"momentum": -0.1}, "momentum"),
    (Nesterov, {"momentum": 1.5}, "momentum"),
    (Adagrad, {"eps": 0}, "eps"),
    (RMSProp, {"decay_rate": 1.0}, "decay_rate"),
    (Adam, {"beta1": 1.0}, "beta1"),
    (Adam, {"beta2": -0.5}, "beta2"),
    (Adam, {"lr": -1e-3}, "lr"),
    (Adam, {"momentum": 0.9}, "momentum"),  # not an Adam parameter
]


@pytest.mark.parametrize("cls, config, field", BAD, ids=[f"{c.name}-{f}-{v}" for c, v, f in BAD])
def test_bad_configuration_names_the_field(cls, config, field):
    with pytest.raises(ConfigError) as err:
        cls(config)
    assert err.value.field == field
    assert cls.name in str(err.value)


def test_defaults_are_the_documented_ones():
    assert Adam().hyperparameters() == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert Momentum().config.momentum == Nesterov().config.momentum == 0.9
    assert RMSProp().config.decay_rate == 0.99


@pytest.mark.parametrize("cls", ALL)
def test_examples_construct_and_round_trip(cls):
    for example in cls.examples:
        opt = cls(example)
        assert cls(opt.hyperparameters()).hyperparameters() == opt.hyperparameters()
        assert opt.lr == opt.config.lr
