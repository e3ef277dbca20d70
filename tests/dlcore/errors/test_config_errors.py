"""Bad configurations raise one documented error type, ConfigError, naming the parameter and the rule.

The table below is the issue's list (negative sizes, p outside [0, 1), a kernel larger
than the padded input, non-integer output sizes, "same" with stride 2) plus the
neighbours a user meets (unknown and missing parameters, wrong types).
"""

from __future__ import annotations

import pytest

from dlcore.activations.leaky_relu import LeakyReLU
from dlcore.errors import ConfigError
from dlcore.layers.affine import Affine
from dlcore.layers.batchnorm import BatchNorm
from dlcore.layers.conv2d import Conv2D
from dlcore.layers.dropconnect import DropConnect
from dlcore.layers.dropout import Dropout
from dlcore.layers.pooling import AvgPool, MaxPool
from dlcore.optimizers.adam import Adam
from dlcore.schedules.cosine import Cosine

# (component class, parameters, field at fault, the whole message)
AT_CONSTRUCTION = [
    (Conv2D, {"filters": 4, "size": -3}, "size", "conv2d: size should be greater than or equal to 1, got -3"),
    (Conv2D, {"filters": -1, "size": 3}, "filters", "conv2d: filters should be greater than or equal to 1, got -1"),
    (Conv2D, {"filters": 4, "size": 3, "pad": -1}, "pad", "conv2d: pad must be an integer >= 0 or \"same\", got -1"),
    (MaxPool, {"size": -2}, "size", "maxpool: size should be greater than or equal to 1, got -2"),
    (AvgPool, {"size": 2, "stride": 0}, "stride", "avgpool: stride should be greater than or equal to 1, got 0"),
    (Affine, {"units": 0}, "units", "affine: units should be greater than or equal to 1, got 0"),
    (Dropout, {"p": 1.0}, "p", "dropout: p should be less than 1, got 1.0"),
    (Dropout, {"p": -0.1}, "p", "dropout: p should be greater than or equal to 0, got -0.1"),
    (DropConnect, {"units": 3, "p": 1.5}, "p", "dropconnect: p should be less than 1, got 1.5"),
    (
        Conv2D,
        {"filters": 4, "size": 3, "stride": 2, "pad": "same"},
        "pad",
        'conv2d: pad "same" needs stride 1 (got stride 2); give pad as an integer',
    ),
    (
        Conv2D,
        {"filters": 4, "size": 4, "pad": "same"},
        "pad",
        'conv2d: pad "same" needs an odd size so that P = (F - 1)/2 is whole (got size 4)',
    ),
    (
        Conv2D,
        {"filters": 4, "size": 3, "padding_mode": "reflect"},
        "padding_mode",
        "conv2d: padding_mode should be 'zeros' or 'edge', got 'reflect'",
    ),
    (BatchNorm, {"momentum": 1.0}, "momentum", "batchnorm: momentum should be less than 1, got 1.0"),
    (LeakyReLU, {"alpha": "big"}, "alpha", "leaky_relu: alpha should be a valid number, unable to parse string as a number, got 'big'"),
    (Adam, {"lr": 0}, "lr", "adam: lr should be greater than 0, got 0"),
    (Adam, {"momentum": 0.9}, "momentum", "adam: unknown parameter 'momentum' (allowed: beta1, beta2, eps, lr)"),
    (Conv2D, {"size": 3}, "filters", "conv2d: filters is required: Number of filters K (output channels)."),
    # A misspelled key names itself and the parameter meant, optional or required alike.
    (
        Conv2D,
        {"filters": 4, "size": 3, "strde": 2},
        "strde",
        "conv2d: unknown parameter 'strde', did you mean 'stride'? (allowed: filters, pad, padding_mode, size, stride)",
    ),
    (Affine, {"unit": 10}, "unit", "affine: unknown parameter 'unit', did you mean 'units'? (allowed: units)"),
    (Cosine, {}, "t_max", "cosine: t_max is required: Epochs over which the rate anneals (usually the training length)."),
]


@pytest.mark.parametrize(
    "cls,params,field,message", AT_CONSTRUCTION, ids=[f"{c.name}-{f}-{i}" for i, (c, _, f, _) in enumerate(AT_CONSTRUCTION)]
)
def test_bad_parameters_name_the_parameter_and_the_rule(cls, params, field, message):
    with pytest.raises(ConfigError) as exc:
        cls(**params)
    assert exc.value.field == field
    assert exc.value.message == message
    assert field in exc.value.message  # the message alone names the parameter
    assert str(exc.value) == f"{field}: {message}"


# (layer, per-sample input shape in the internal layout (H, W, C), field, the whole message)
AT_SHAPE_INFERENCE = [
    (
        Conv2D(filters=8, size=5, stride=2),
        (32, 32, 3),
        "stride",
        "conv2d: output height (32 - 5 + 2*0)/2 + 1 = 14.5 is not a whole number; change size, stride or pad",
    ),
    (
        Conv2D(filters=8, size=3, stride=2, pad=1),
        (9, 8, 3),
        "stride",
        "conv2d: output width (8 - 3 + 2*1)/2 + 1 = 4.5 is not a whole number; change size, stride or pad",
    ),
    (
        Conv2D(filters=8, size=7, pad=1),
        (4, 4, 3),
        "size",
        "conv2d: kernel size 7 is larger than the padded input height 4 + 2*1 = 6; use a smaller size or more padding",
    ),
    (
        MaxPool(size=2),
        (7, 8, 3),
        "stride",
        "maxpool: output height (7 - 2)/2 + 1 = 3.5 is not a whole number; change size or stride",
    ),
    (
        AvgPool(size=5),
        (4, 6, 1),
        "size",
        "avgpool: window size 5 is larger than the input height 4; use a smaller size",
    ),
]


@pytest.mark.parametrize("layer,in_shape,field,message", AT_SHAPE_INFERENCE, ids=lambda v: getattr(v, "name", None))
def test_impossible_shapes_show_the_formula_and_the_numbers(layer, in_shape, field, message):
    with pytest.raises(ConfigError) as exc:
        layer.infer(in_shape)
    assert exc.value.field == field
    assert exc.value.message == message


def test_config_error_is_one_value_error_type_and_prefixes_paths():
    assert issubclass(ConfigError, ValueError)
    err = ConfigError("size", "conv2d: size should be greater than or equal to 1, got -3")
    nested = err.at("model.layers[2]")
    assert nested.field == "model.layers[2].size" and nested.message == err.message
    assert ConfigError("[0]", "m").at("augment").field == "augment[0]"
    assert err.at("") is err


def test_every_problem_is_listed_not_only_the_first():
    from dlcore.config import validation_errors

    errors = validation_errors(Conv2D.Config, {"filters": 0, "size": -1, "stride": 0, "bogus": 1}, "conv2d")
    assert sorted(e.field for e in errors) == ["bogus", "filters", "size", "stride"]
    assert all(isinstance(e, ConfigError) and e.message.startswith("conv2d: ") for e in errors)


def test_a_misspelled_required_parameter_is_one_error_not_also_a_missing_one():
    from dlcore.config import validation_errors

    errors = validation_errors(Affine.Config, {"unit": 10}, "affine")
    assert [(e.field, e.message) for e in errors] == [
        ("unit", "affine: unknown parameter 'unit', did you mean 'units'? (allowed: units)")
    ]
    # A key that resembles nothing leaves the required one missing: two errors, the unknown key first.
    errors = validation_errors(Affine.Config, {"widht": 10}, "affine")
    assert [e.field for e in errors] == ["widht", "units"]
