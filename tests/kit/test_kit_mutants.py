"""The kit on deliberately broken components: each check fails on its mutant, passes on the original.

Each kind has one small correct component written here, and mutants that break
exactly one promise (a flipped backward sign, an in-place input change, a
nondeterministic forward, wrong shape inference, ...).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
from pydantic import Field

from dlcore.component import (
    Architecture,
    Dataset,
    Initializer,
    Layer,
    Loss,
    Optimizer,
    Preprocessor,
    Regularizer,
    Schedule,
    ShapeInfo,
)
from dlcore.config import Config
from dlcore.testing import (
    CheckSkipped,
    check_component,
    checks_for,
    parametrize_with_checks,
    run_check,
    run_checks,
)

# --------------------------------------------------------------------------- layers


class ScaleConfig(Config):
    spread: float = Field(0.1, ge=0, description="Std of the initial scale around 1.")


def scale_forward(x, gamma, beta):
    """out = x * gamma + beta over the last axis. x: (N, ..., C); gamma, beta: (C,)."""
    return x * gamma + beta, (x, gamma)


def scale_backward(dout, cache):
    x, gamma = cache
    axes = tuple(range(dout.ndim - 1))
    return dout * gamma, (dout * x).sum(axis=axes), dout.sum(axis=axes)


class Scale(Layer):
    """A correct layer with parameters: per-channel scale and shift."""

    name: ClassVar[str] = "scale"
    summary: ClassVar[str] = "Per-channel scale and shift."
    Config: ClassVar[type[Config]] = ScaleConfig
    examples: ClassVar[tuple[dict, ...]] = ({}, {"spread": 0.5})
    example_shapes: ClassVar[tuple] = ((5,), (2, 3, 4))

    def infer(self, in_shape):
        return ShapeInfo(out_shape=tuple(in_shape), params=2 * in_shape[-1])

    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        c = in_shape[-1]
        gamma = 1 + self.config.spread * rng.standard_normal(c)
        self.params = {"gamma": gamma.astype(dtype), "beta": (0.1 * rng.standard_normal(c)).astype(dtype)}

    def forward(self, x, training=False, rng=None):
        out, self.cache = scale_forward(x, self.params["gamma"], self.params["beta"])
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = scale_backward(dout, self.cache)
        self.grads = {"gamma": dgamma, "beta": dbeta}
        return dx


class FlippedBackward(Scale):
    def backward(self, dout):
        return -super().backward(dout)


class InPlaceInput(Scale):
    def forward(self, x, training=False, rng=None):
        x *= 1.0001  # the bug: writes into the caller's array
        return super().forward(x, training, rng)


class Nondeterministic(Scale):
    def forward(self, x, training=False, rng=None):
        noise = np.random.default_rng().standard_normal(x.shape) * 1e-3  # not the rng passed in
        return super().forward(x, training, rng) + noise


class WrongInference(Scale):
    def infer(self, in_shape):
        return ShapeInfo(out_shape=(*in_shape[:-1], in_shape[-1] + 1), params=2 * in_shape[-1])


class WrongParamCount(Scale):
    def infer(self, in_shape):
        return ShapeInfo(out_shape=tuple(in_shape), params=in_shape[-1])


class UndeclaredModes(Scale):
    """Declares mode_dependent = False (the default) but computes something else in training."""

    def forward(self, x, training=False, rng=None):
        out = super().forward(x, training, rng)
        return 2 * out if training else out


class UndeclaredRandomness(Scale):
    """Draws from the rng in training but declares stochastic = False; also mode dependent."""

    mode_dependent: ClassVar[bool] = True

    def forward(self, x, training=False, rng=None):
        out = super().forward(x, training, rng)
        return out * rng.uniform(0.5, 1.5, size=out.shape) if training else out


class StateOutsideParams(Scale):
    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        self.offset = rng.standard_normal(in_shape[-1]).astype(dtype)  # not in params or state: lost on save

    def forward(self, x, training=False, rng=None):
        return super().forward(x, training, rng) + self.offset


class Upcasting(Scale):
    def forward(self, x, training=False, rng=None):
        return super().forward(x.astype(np.float64), training, rng)


class MutatesDout(Scale):
    def backward(self, dout):
        dx = super().backward(dout)
        dout *= 0  # the bug: a residual block passes one dout to two branches
        return dx


class SharedScratch(Scale):
    """Keeps its scratch array on the layer (the bug conv2d had): concurrent callers overwrite it."""

    def forward(self, x, training=False, rng=None):
        if getattr(self, "scratch", None) is None or self.scratch.shape != x.shape:
            self.scratch = np.empty_like(x)
        np.multiply(x, self.params["gamma"], out=self.scratch)
        for _ in range(20):  # a few Python steps between writing and reading the shared buffer
            self.scratch += 0.0
        return self.scratch + self.params["beta"]


class MultiLineSummary(Scale):
    summary: ClassVar[str] = "Per-channel scale\nand shift."


class UndocumentedConfig(Config):
    spread: float = 0.1


class UndocumentedParam(Scale):
    Config: ClassVar[type[Config]] = UndocumentedConfig


# --------------------------------------------------------------------------- losses


class Softmax(Loss):
    name: ClassVar[str] = "test_softmax"
    summary: ClassVar[str] = "Cross-entropy of softmax scores."

    def forward(self, scores, y):
        n = scores.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_p[np.arange(n), y].mean()
        dscores = np.exp(log_p)
        dscores[np.arange(n), y] -= 1
        return float(loss), dscores / n

    def expected_initial_loss(self, num_classes):
        return math.log(num_classes)


class LossWrongSign(Softmax):
    def forward(self, scores, y):
        loss, dscores = super().forward(scores, y)
        return loss, -dscores


class LossSummed(Softmax):
    def forward(self, scores, y):
        loss, dscores = super().forward(scores, y)
        n = scores.shape[0]
        return loss * n, dscores * n


class LossWrongExpectation(Softmax):
    def expected_initial_loss(self, num_classes):
        return num_classes - 1.0


# --------------------------------------------------------------------------- regularizers


class StrengthConfig(Config):
    strength: float = Field(1e-3, ge=0, description="lambda.")


class HalfL2(Regularizer):
    name: ClassVar[str] = "test_l2"
    summary: ClassVar[str] = "0.5 * lambda * sum w^2."
    Config: ClassVar[type[Config]] = StrengthConfig

    def penalty(self, w):
        s = self.config.strength
        return 0.5 * s * float(np.sum(w * w)), s * w


class L2WrongGradient(HalfL2):
    def penalty(self, w):
        value, dw = super().penalty(w)
        return value, 2 * dw


# --------------------------------------------------------------------------- optimizers


class LrConfig(Config):
    lr: float = Field(0.1, gt=0, description="Base learning rate.")


class PlainSGD(Optimizer):
    name: ClassVar[str] = "test_sgd"
    summary: ClassVar[str] = "w -= lr * dw."
    Config: ClassVar[type[Config]] = LrConfig

    def update(self, w, dw, slots, lr):
        w -= lr * dw


class Ascent(PlainSGD):
    def update(self, w, dw, slots, lr):
        w += lr * dw


class Momentum(PlainSGD):
    def update(self, w, dw, slots, lr):
        v = slots.setdefault("v", np.zeros_like(w))
        v *= 0.9
        v -= lr * dw
        w += v


class MomentumHiddenState(PlainSGD):
    """Keeps its velocity outside ``slots``: a resumed copy starts from zero velocity."""

    def update(self, w, dw, slots, lr):
        hidden = self.__dict__.setdefault("_velocity", {})
        v = hidden.setdefault(id(w), np.zeros_like(w))
        v *= 0.9
        v -= lr * dw
        w += v


# --------------------------------------------------------------------------- schedules


class Exponential(Schedule):
    name: ClassVar[str] = "test_exponential"
    summary: ClassVar[str] = "exp(-0.1 t)."

    def factor(self, epoch):
        return math.exp(-0.1 * epoch)


class Rising(Exponential):
    def factor(self, epoch):
        return 1.0 + 0.01 * epoch


class HalfStart(Exponential):
    def factor(self, epoch):
        return 0.5 * math.exp(-0.1 * epoch)


class NegativeLate(Exponential):
    def factor(self, epoch):
        return 1.0 - 0.05 * epoch


# --------------------------------------------------------------------------- initializers


class Gaussian(Initializer):
    name: ClassVar[str] = "test_gaussian"
    summary: ClassVar[str] = "randn / sqrt(fan_in / 2)."

    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float32):
        return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


class GlobalSeedGaussian(Gaussian):
    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float32):
        return (np.random.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


class AlwaysFloat64(Gaussian):
    def __call__(self, shape, fan_in, fan_out, rng, dtype=np.float32):
        return rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)


# --------------------------------------------------------------------------- preprocessors


class MeanCenter(Preprocessor):
    name: ClassVar[str] = "test_mean"
    summary: ClassVar[str] = "Subtract the training mean of each feature."

    def fit(self, x):
        self.state = {"mean": x.mean(axis=0)}
        return self

    def transform(self, x):
        return x - self.state["mean"]


class CenterInPlace(MeanCenter):
    def transform(self, x):
        x -= self.state["mean"]
        return x


class StateNotArrays(MeanCenter):
    def fit(self, x):
        self.state = {"mean": x.mean(axis=0).tolist()}
        return self

    def transform(self, x):
        return x - np.asarray(self.state["mean"])


# --------------------------------------------------------------------------- datasets and architectures


class BlobsConfig(Config):
    seed: int = Field(0, description="Seed of the generator.")


class Blobs(Dataset):
    name: ClassVar[str] = "test_blobs"
    summary: ClassVar[str] = "Three Gaussian blobs in 2-D."
    Config: ClassVar[type[Config]] = BlobsConfig

    def sample_shape(self):
        return (2,)

    def num_classes(self):
        return 3

    def load(self):
        rng = np.random.default_rng(self.config.seed)
        y = np.repeat(np.arange(3), 10)
        return rng.standard_normal((30, 2)) + 3 * y[:, None], y


class BlobsLabelsOutOfRange(Blobs):
    def load(self):
        x, y = super().load()
        return x, y + 1


class BlobsUnseeded(Blobs):
    def load(self):
        x, y = super().load()
        return x + np.random.default_rng().standard_normal(x.shape), y


class BlobsWrongShape(Blobs):
    def sample_shape(self):
        return (3,)


class Linear(Architecture):
    name: ClassVar[str] = "test_linear"
    summary: ClassVar[str] = "Flatten and one affine layer."

    def layers(self, sample_shape, num_classes):
        return [{"type": "flatten"}, {"type": "affine", "units": num_classes}]


class LinearWrongClasses(Linear):
    def layers(self, sample_shape, num_classes):
        return [{"type": "flatten"}, {"type": "affine", "units": num_classes + 1}]


# --------------------------------------------------------------------------- the tests

GOOD = [Scale, Softmax, HalfL2, PlainSGD, Momentum, Exponential, Gaussian, MeanCenter, Blobs, Linear]

MUTANTS = [
    (FlippedBackward, "check_gradients"),
    (InPlaceInput, "check_no_input_mutation"),
    (MutatesDout, "check_no_input_mutation"),
    (Nondeterministic, "check_deterministic"),
    (WrongInference, "check_shape_inference"),
    (WrongParamCount, "check_shape_inference"),
    (UndeclaredModes, "check_training_modes"),
    (UndeclaredRandomness, "check_training_modes"),
    (StateOutsideParams, "check_save_load"),
    (Upcasting, "check_float32"),
    (SharedScratch, "check_concurrent_evaluation"),
    (MultiLineSummary, "check_schema"),
    (UndocumentedParam, "check_schema"),
    (LossWrongSign, "check_loss_gradient"),
    (LossSummed, "check_loss_contract"),
    (LossWrongExpectation, "check_loss_initial"),
    (L2WrongGradient, "check_regularizer_gradient"),
    (Ascent, "check_optimizer_descends"),
    (MomentumHiddenState, "check_optimizer_state"),
    (Rising, "check_schedule_monotone"),
    (HalfStart, "check_schedule_values"),
    (NegativeLate, "check_schedule_values"),
    (GlobalSeedGaussian, "check_initializer_draws"),
    (AlwaysFloat64, "check_initializer_draws"),
    (CenterInPlace, "check_preprocessor"),
    (StateNotArrays, "check_preprocessor"),
    (BlobsLabelsOutOfRange, "check_dataset_load"),
    (BlobsUnseeded, "check_dataset_load"),
    (BlobsWrongShape, "check_dataset_load"),
    (LinearWrongClasses, "check_architecture_layers"),
]


@parametrize_with_checks(GOOD)
def test_correct_components_pass_every_check(component, check):
    check(component)


@pytest.mark.parametrize("mutant, check_name", MUTANTS, ids=[m.__name__ for m, _ in MUTANTS])
def test_each_check_fails_on_its_mutant(mutant, check_name):
    (check,) = [c for c in checks_for(mutant) if c.name == check_name]
    result = run_check(mutant, check)
    assert result.status == "failed", f"{check_name} did not catch {mutant.__name__}: {result}"
    assert result.message, "a failing check must say what broke"


def test_every_check_has_a_mutant():
    from dlcore.testing import all_check_names

    assert sorted(set(all_check_names())) == sorted({name for _, name in MUTANTS})


def test_failure_messages_name_the_example_and_the_numbers():
    (grad,) = [c for c in checks_for(FlippedBackward) if c.name == "check_gradients"]
    message = run_check(FlippedBackward, grad).message
    assert "FlippedBackward({})" in message and "(5,)" in message and "relative error" in message
    (infer,) = [c for c in checks_for(WrongInference) if c.name == "check_shape_inference"]
    message = run_check(WrongInference, infer).message
    assert "(6,)" in message and "(5,)" in message


def test_check_component_raises_listing_failures_and_accepts_instances():
    check_component(Scale)
    check_component(Scale(spread=0.3))
    with pytest.raises(AssertionError) as exc:
        check_component(FlippedBackward)
    assert "check_gradients" in str(exc.value)


class DeclaredFlipped(FlippedBackward):
    expected_failures: ClassVar[dict[str, str]] = {"check_gradients": "sign bug kept to test the kit"}


class DeclaredButPasses(Scale):
    expected_failures: ClassVar[dict[str, str]] = {"check_float32": "claims a bug it does not have"}


def test_expected_failures_become_strict_xfail_marks_with_their_reason():
    mark = parametrize_with_checks([DeclaredFlipped, Scale])
    argnames, params = mark.args
    assert argnames == "component, check"
    ids = [p.id for p in params]
    assert "DeclaredFlipped-check_gradients" in ids and "Scale-check_schema" in ids
    assert len(ids) == 2 * len(checks_for(Scale))
    by_id = {p.id: p for p in params}
    (xfail,) = by_id["DeclaredFlipped-check_gradients"].marks
    assert xfail.name == "xfail" and xfail.kwargs == {"reason": "sign bug kept to test the kit", "strict": True}
    assert not by_id["Scale-check_gradients"].marks


def test_run_checks_classifies_expected_failures():
    statuses = {r.check: r.status for r in run_checks(DeclaredFlipped)}
    assert statuses["check_gradients"] == "xfailed"
    assert statuses["check_schema"] == "passed"
    statuses = {r.check: r for r in run_checks(DeclaredButPasses)}
    assert statuses["check_float32"].status == "xpassed" and not statuses["check_float32"].ok
    check_component(DeclaredFlipped)
    with pytest.raises(AssertionError, match="xpassed"):
        check_component(DeclaredButPasses)


def test_unknown_expected_failure_names_fail_the_schema_check():
    class Typo(Scale):
        expected_failures: ClassVar[dict[str, str]] = {"check_gradient": "typo"}

    (schema,) = [c for c in checks_for(Typo) if c.name == "check_schema"]
    assert "check_gradient" in run_check(Typo, schema).message


def test_skipped_checks_become_pytest_skips():
    def needs_missing_module(component_cls, config):
        raise CheckSkipped("module not there")

    from dlcore.testing import Check
    from dlcore.testing.kit import _PytestCheck

    assert run_check(Scale, Check("check_x", needs_missing_module)).status == "skipped"
    with pytest.raises(pytest.skip.Exception, match="module not there"):
        _PytestCheck(Check("check_x", needs_missing_module))(Scale)


class BigScale(Scale):
    """2 x 1,200 = 2,400 parameters: above the kit's full-check limit of 2,000."""

    examples: ClassVar[tuple[dict, ...]] = ({},)
    example_shapes: ClassVar[tuple] = ((1200,),)


class BigFlipped(BigScale):
    def backward(self, dout):
        return -super().backward(dout)


def test_gradients_of_large_layers_are_checked_on_sampled_entries_and_still_catch_a_flipped_sign(monkeypatch):
    from dlcore.testing import layer_checks

    seen = []
    real = layer_checks.check_layer

    def recording(layer, x, **kwargs):
        errors = real(layer, x, **kwargs)
        seen.append((kwargs.get("max_entries"), sorted(errors)))
        return errors

    monkeypatch.setattr(layer_checks, "check_layer", recording)
    (grad,) = [c for c in checks_for(BigScale) if c.name == "check_gradients"]
    assert run_check(BigScale, grad).status == "passed"
    # Both modes, sampled: 20 entries of the input and of every parameter array.
    assert seen == [(layer_checks.SAMPLED_ENTRIES, ["beta", "gamma", "x"])] * 2
    assert layer_checks.SAMPLED_ENTRIES == 20 and layer_checks.MAX_FULL_PARAMS == 2000

    seen.clear()
    assert run_check(Scale, grad).status == "passed"
    assert {max_entries for max_entries, _ in seen} == {None}  # small layers: every entry

    result = run_check(BigFlipped, grad)
    assert result.status == "failed" and "relative error" in result.message
