"""Initializers: the scales the catalogue gives, dtypes, reproducibility, the zero-init warning."""

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.initializers.glorot import GlorotNormal, GlorotUniform
from dlcore.initializers.he import He
from dlcore.initializers.normal import Normal
from dlcore.initializers.xavier import Xavier
from dlcore.initializers.zeros import Zeros

FAN_IN, FAN_OUT = 200, 300


@pytest.mark.parametrize(
    "init, expected_std",
    [
        (He(), np.sqrt(2.0 / FAN_IN)),
        (Xavier(), np.sqrt(1.0 / FAN_IN)),
        (Normal(), 0.01),
        (Normal(std=0.5), 0.5),
    ],
    ids=["he", "xavier", "normal", "normal-0.5"],
)
def test_scale_matches_catalogue(init, expected_std):
    w = init((FAN_IN, FAN_OUT), FAN_IN, FAN_OUT, np.random.default_rng(0), np.float64)
    assert w.shape == (FAN_IN, FAN_OUT)
    # 60000 draws: the sample std is within about 0.3% of the true one; 2% is generous.
    assert abs(w.std() / expected_std - 1) < 0.02
    assert abs(w.mean()) < 4 * expected_std / np.sqrt(w.size)


@pytest.mark.parametrize("cls", [He, Xavier, Normal, GlorotNormal, GlorotUniform])
def test_same_seed_same_weights_in_both_dtypes(cls):
    shape = (3, 3, 4, 5)  # a conv kernel (KH, KW, C, F)
    fan_in = 3 * 3 * 4
    w32 = cls()(shape, fan_in, 45, np.random.default_rng(7), np.float32)
    w64 = cls()(shape, fan_in, 45, np.random.default_rng(7), np.float64)
    w64b = cls()(shape, fan_in, 45, np.random.default_rng(7), np.float64)
    assert w32.dtype == np.float32 and w64.dtype == np.float64
    np.testing.assert_array_equal(w64, w64b)
    np.testing.assert_allclose(w32, w64, rtol=1e-6)
    other = cls()(shape, fan_in, 45, np.random.default_rng(8), np.float64)
    assert not np.array_equal(w64, other)


def test_zeros_warns_and_returns_zeros():
    with pytest.warns(UserWarning, match="every neuron computes the same thing"):
        w = Zeros()((4, 5), 4, 5, np.random.default_rng(0), np.float64)
    assert w.dtype == np.float64 and w.shape == (4, 5) and not w.any()


def test_a_layer_built_with_zeros_warns():
    from dlcore.layers.affine import Affine

    layer = Affine(units=3)
    with pytest.warns(UserWarning, match="every neuron computes the same thing"):
        layer.build((4,), np.random.default_rng(0), np.float64, Zeros())
    assert not layer.params["W"].any()


def test_initializers_do_not_touch_global_random_state():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    He()((10, 10), 10, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("std", [0, -0.1])
def test_normal_rejects_non_positive_std(std):
    with pytest.raises(ConfigError) as err:
        Normal(std=std)
    assert err.value.field == "std"


def test_unknown_parameter_is_named():
    with pytest.raises(ConfigError) as err:
        He(gain=2)
    assert err.value.field == "gain"


@pytest.mark.parametrize("cls", [He, Xavier, Normal, Zeros])
def test_examples_construct_and_round_trip(cls):
    for example in cls.examples:
        init = cls(example)
        assert type(init)(init.hyperparameters()).hyperparameters() == init.hyperparameters()
    assert cls.summary and cls.name


# --------------------------------------------------------------------------- glorot


def test_glorot_variance_is_two_over_the_sum_of_the_fans():
    from dlcore.initializers.glorot import GlorotNormal, GlorotUniform

    expected = 2.0 / (FAN_IN + FAN_OUT)
    for init in (GlorotNormal(), GlorotUniform()):
        w = init((FAN_IN, FAN_OUT), FAN_IN, FAN_OUT, np.random.default_rng(0), np.float64)
        # 60000 draws: the sample variance is within about 1% of the true one.
        assert abs(w.var() / expected - 1) < 0.03, init.name
        assert abs(w.mean()) < 4 * np.sqrt(expected / w.size)
    bound = np.sqrt(6.0 / (FAN_IN + FAN_OUT))
    w = GlorotUniform()((FAN_IN, FAN_OUT), FAN_IN, FAN_OUT, np.random.default_rng(1), np.float64)
    assert -bound <= w.min() < -0.99 * bound and 0.99 * bound < w.max() <= bound


def test_glorot_matches_pytorch_xavier_bounds_and_std_for_a_convolution():
    torch = pytest.importorskip("torch")
    from dlcore.initializers.glorot import GlorotNormal, GlorotUniform

    k, c, f = 32, 16, 3
    # Our fans for a conv kernel (F, F, C, K) are PyTorch's for its weight (K, C, F, F).
    fan_in, fan_out = f * f * c, f * f * k
    t = torch.empty(k, c, f, f, dtype=torch.float64)
    assert torch.nn.init._calculate_fan_in_and_fan_out(t) == (fan_in, fan_out)
    torch.manual_seed(0)
    torch_uniform = torch.nn.init.xavier_uniform_(t.clone()).numpy()
    torch_normal = torch.nn.init.xavier_normal_(t.clone()).numpy()
    ours_uniform = GlorotUniform()((f, f, c, k), fan_in, fan_out, np.random.default_rng(0), np.float64)
    ours_normal = GlorotNormal()((f, f, c, k), fan_in, fan_out, np.random.default_rng(0), np.float64)
    # The same distribution: PyTorch's bound sqrt(6 / (fan_in + fan_out)) contains both, and
    # the spreads agree within sampling error (4608 draws each: std within about 3%).
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    for arr in (torch_uniform, ours_uniform):
        assert np.abs(arr).max() <= bound and np.abs(arr).max() > 0.99 * bound
    assert abs(ours_uniform.std() / torch_uniform.std() - 1) < 0.06
    assert abs(ours_normal.std() / torch_normal.std() - 1) < 0.06
    assert abs(ours_normal.std() / np.sqrt(2.0 / (fan_in + fan_out)) - 1) < 0.04


def test_xavier_keeps_the_notes_form_and_says_so():
    from dlcore.initializers.glorot import GlorotNormal

    w = Xavier()((FAN_IN, FAN_OUT), FAN_IN, FAN_OUT, np.random.default_rng(0), np.float64)
    g = GlorotNormal()((FAN_IN, FAN_OUT), FAN_IN, FAN_OUT, np.random.default_rng(0), np.float64)
    np.testing.assert_allclose(w, np.random.default_rng(0).standard_normal((FAN_IN, FAN_OUT)) / np.sqrt(FAN_IN))
    assert abs(g.std() / w.std() - np.sqrt(2 * FAN_IN / (FAN_IN + FAN_OUT))) < 1e-9
    assert "randn/sqrt(fan_in)" in Xavier.summary and "glorot_normal" in Xavier.summary
