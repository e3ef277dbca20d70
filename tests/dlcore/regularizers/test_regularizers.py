"""L1 and L2 regularizers: values by their definitions, gradient checks, bad strengths."""

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import away_from_kinks, numerical_gradient, rel_error
from dlcore.regularizers.l1 import L1, l1_penalty
from dlcore.regularizers.l2 import L2, l2_penalty


@pytest.mark.parametrize("shape", [(4, 5), (3, 3, 2, 4)])
@pytest.mark.parametrize("penalty", [l1_penalty, l2_penalty], ids=["l1", "l2"])
def test_gradient_check(penalty, shape):
    rng = np.random.default_rng(0)
    w = away_from_kinks(rng.standard_normal(shape))  # |w| has its kink at 0
    assert np.abs(w).min() >= 1e-2
    _, dw = penalty(w, 0.3)
    num = numerical_gradient(lambda: penalty(w, 0.3)[0], w, h=1e-6)
    assert rel_error(dw, num) < 1e-7


def test_values_follow_the_definitions():
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    value, dw = L2(strength=0.1).penalty(w)
    assert value == pytest.approx(0.5 * 0.1 * (1 + 4 + 0 + 9))
    np.testing.assert_allclose(dw, 0.1 * w)
    value, dw = L1(strength=0.1).penalty(w)
    assert value == pytest.approx(0.1 * (1 + 2 + 0 + 3))
    np.testing.assert_allclose(dw, [[0.1, -0.1], [0.0, 0.1]])


@pytest.mark.parametrize("cls", [L1, L2])
def test_zero_strength_is_no_penalty_and_input_untouched(cls):
    w = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    before = w.copy()
    value, dw = cls(strength=0.0).penalty(w)
    assert value == 0 and not dw.any() and dw.dtype == np.float32
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize("cls", [L1, L2])
def test_negative_strength_is_rejected(cls):
    with pytest.raises(ConfigError) as err:
        cls(strength=-1e-3)
    assert err.value.field == "strength"
    assert "strength" in str(err.value)


@pytest.mark.parametrize("cls", [L1, L2])
def test_examples_construct_and_round_trip(cls):
    for example in cls.examples:
        reg = cls(example)
        assert cls(reg.hyperparameters()).hyperparameters() == reg.hyperparameters()


ISSUE_LAYERS = [
    ("affine", {"units": 3}, (6,)),
    ("conv2d", {"filters": 2, "size": 3}, (4, 4, 2)),
    ("dropconnect", {"units": 3}, (6,)),
    ("maxout", {"pieces": 2}, (6,)),
    ("batchnorm", {}, (6,)),
    ("spatial_batchnorm", {}, (4, 4, 2)),
    ("prelu", {}, (6,)),
]


@pytest.mark.parametrize("name,config,in_shape", ISSUE_LAYERS, ids=[n for n, _, _ in ISSUE_LAYERS])
def test_regularizers_reach_weights_only(name, config, in_shape):
    from importlib.metadata import entry_points

    group = "dlcore.activations" if name in ("maxout", "prelu") else "dlcore.layers"
    cls = entry_points(group=group)[name].load()
    layer = cls(config)
    layer.build(in_shape, np.random.default_rng(0), np.float64)
    regularized = {key for key, _ in layer.regularized_params()}
    # Weight matrices are penalized; biases, batchnorm's gamma and beta and PReLU's slopes never.
    assert regularized == ({"W"} if "W" in layer.params else set())
    assert not regularized & {"b", "gamma", "beta", "alpha"}
