"""SVM and softmax losses: gradient checks, torch parity, the catalogue's first-loss checks."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlcore.errors import ConfigError
from dlcore.gradcheck import numerical_gradient, reference_error, rel_error
from dlcore.losses.softmax import SoftmaxLoss, softmax_loss
from dlcore.losses.svm import SVMLoss, svm_loss


def scores_away_from_kinks(rng, num_samples, num_classes, margin, scale=1.0, gap=1e-2):
    """Scores (N, C) and labels where every hinge s_j - s_y + margin is at least ``gap`` from 0."""
    y = rng.integers(0, num_classes, size=num_samples)
    rows = np.arange(num_samples)
    while True:
        scores = scale * rng.standard_normal((num_samples, num_classes))
        hinge = scores - scores[rows, y][:, None] + margin
        hinge[rows, y] = 1.0
        if np.abs(hinge).min() >= gap:
            return scores, y


@pytest.mark.parametrize("margin", [1.0, 0.5])
@pytest.mark.parametrize("shape", [(5, 4), (8, 10)])
def test_svm_gradient_check(shape, margin):
    rng = np.random.default_rng(0)
    scores, y = scores_away_from_kinks(rng, *shape, margin)
    # Scores with many active hinges and some inactive ones, so both branches are checked.
    _, dscores = svm_loss(scores, y, margin)
    num = numerical_gradient(lambda: svm_loss(scores, y, margin)[0], scores, h=1e-6)
    assert rel_error(dscores, num) < 1e-7


@pytest.mark.parametrize("scale", [1.0, 30.0])
@pytest.mark.parametrize("shape", [(5, 4), (8, 10)])
def test_softmax_gradient_check(shape, scale):
    rng = np.random.default_rng(1)
    scores = scale * rng.standard_normal(shape)
    y = rng.integers(0, shape[1], size=shape[0])
    _, dscores = softmax_loss(scores, y)
    num = numerical_gradient(lambda: softmax_loss(scores, y)[0], scores, h=1e-6)
    assert rel_error(dscores, num) < 1e-7


def test_softmax_is_stable_for_huge_scores():
    scores = np.array([[1000.0, 0.0, -1000.0], [5000.0, 5000.0, 5000.0]])
    y = np.array([0, 2])
    loss, dscores = softmax_loss(scores, y)
    assert np.isfinite(loss) and np.all(np.isfinite(dscores))
    assert loss == pytest.approx(0.5 * math.log(3))


@pytest.mark.torch
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_svm_matches_torch_multi_margin_loss(margin):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    num_classes = 7
    scores, y = scores_away_from_kinks(rng, 12, num_classes, margin)
    loss, dscores = svm_loss(scores, y, margin)

    t_scores = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    # torch's multi_margin_loss also divides by the number of classes.
    t_loss = num_classes * torch.nn.functional.multi_margin_loss(
        t_scores, torch.tensor(y), margin=margin
    )
    t_loss.backward()
    assert abs(loss - t_loss.item()) / abs(t_loss.item()) < 1e-10
    assert reference_error(dscores, t_scores.grad.numpy()) < 1e-10


@pytest.mark.torch
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_softmax_matches_torch_cross_entropy(scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    scores = scale * rng.standard_normal((12, 7))
    y = rng.integers(0, 7, size=12)
    loss, dscores = softmax_loss(scores, y)

    t_scores = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(t_scores, torch.tensor(y))
    t_loss.backward()
    assert abs(loss - t_loss.item()) / abs(t_loss.item()) < 1e-10
    assert reference_error(dscores, t_scores.grad.numpy()) < 1e-10


def first_scores(num_classes=10, num_samples=200, dim=50, seed=4):
    """Scores at the start of training: dlcore's affine layer built with small weights
    (the ``normal`` initializer, 0.001 * randn) on random data."""
    from dlcore.initializers.normal import Normal
    from dlcore.layers.affine import Affine

    rng = np.random.default_rng(seed)
    layer = Affine(units=num_classes)
    layer.build((dim,), rng, np.float64, Normal(std=0.001))
    x = rng.standard_normal((num_samples, dim))
    return layer.forward(x, training=True), rng.integers(0, num_classes, size=num_samples)


def test_first_softmax_loss_is_about_ln_10():
    scores, y = first_scores()
    loss, _ = SoftmaxLoss().forward(scores, y)
    assert abs(loss - math.log(10)) < 0.05
    assert SoftmaxLoss().expected_initial_loss(10) == pytest.approx(math.log(10))


def test_first_svm_loss_is_about_9():
    scores, y = first_scores()
    loss, _ = SVMLoss().forward(scores, y)
    assert abs(loss - 9) < 0.2
    assert SVMLoss().expected_initial_loss(10) == 9
    assert SVMLoss(margin=0.5).expected_initial_loss(10) == 4.5


@pytest.mark.parametrize("loss_cls", [SVMLoss, SoftmaxLoss])
def test_float32_in_float32_out_and_input_untouched(loss_cls):
    scores64, y = first_scores(num_samples=16)
    scores = (scores64 * 1000).astype(np.float32)
    before = scores.copy()
    loss, dscores = loss_cls().forward(scores, y)
    assert isinstance(loss, float) and dscores.dtype == np.float32
    np.testing.assert_array_equal(scores, before)
    loss64, dscores64 = loss_cls().forward(scores.astype(np.float64), y)
    assert loss == pytest.approx(loss64, rel=1e-5)
    assert rel_error(dscores, dscores64) < 1e-5


def test_svm_gradient_rows_sum_to_zero_and_zero_when_margins_met():
    scores = np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    y = np.array([0, 2])
    loss, dscores = svm_loss(scores, y)
    assert loss == 0 and not dscores.any()
    rng = np.random.default_rng(5)
    scores, y = scores_away_from_kinks(rng, 6, 5, 1.0)
    _, dscores = svm_loss(scores, y)
    np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-15)


@pytest.mark.parametrize("margin", [0, -1])
def test_svm_rejects_non_positive_margin(margin):
    with pytest.raises(ConfigError) as err:
        SVMLoss(margin=margin)
    assert err.value.field == "margin"


@pytest.mark.parametrize("cls", [SVMLoss, SoftmaxLoss])
def test_examples_construct_and_round_trip(cls):
    for example in cls.examples:
        loss = cls(example)
        assert cls(loss.hyperparameters()).hyperparameters() == loss.hyperparameters()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_samples=st.integers(1, 6),
    num_classes=st.integers(2, 6),
    shift=st.floats(-100, 100),
)
def test_losses_ignore_a_constant_added_to_a_row(seed, num_samples, num_classes, shift):
    # Both losses depend only on score differences, so adding one constant to every
    # score of a sample changes neither the loss nor the gradient; each gradient row sums to 0.
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((num_samples, num_classes))
    y = rng.integers(0, num_classes, size=num_samples)
    shifted = scores + shift * rng.standard_normal((num_samples, 1))
    for loss_fn in (softmax_loss, svm_loss):
        loss, dscores = loss_fn(scores, y)
        loss2, dscores2 = loss_fn(shifted, y)
        assert loss2 == pytest.approx(loss, rel=1e-9, abs=1e-9)
        if loss_fn is softmax_loss:  # svm's active set may flip within rounding at a kink
            np.testing.assert_allclose(dscores2, dscores, atol=1e-9)
        np.testing.assert_allclose(dscores.sum(axis=1), 0, atol=1e-12)
