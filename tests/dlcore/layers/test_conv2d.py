"""Conv2D: gradient checks, PyTorch parity, shape inference, configuration errors, buffers."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, reference_error
from dlcore.layers.conv2d import Conv2D


def gaussian_init(shape, fan_in, fan_out, rng, dtype=np.float32):
    """A stand-in initializer with the Initializer call signature."""
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)


def built(in_shape, dtype=np.float64, seed=0, **cfg):
    layer = Conv2D(**cfg)
    layer.build(in_shape, np.random.default_rng(seed), dtype, gaussian_init)
    # Non-zero biases so that their effect is visible in every check.
    layer.params["b"][...] = np.random.default_rng(seed + 7).standard_normal(layer.params["b"].shape)
    return layer


# (per-sample input shape (H, W, C), config): strides 1 and 2, pads 0, 1, 2, "same",
# edge padding, non-square inputs, 1x1 and even kernels.
CASES = [
    ((5, 5, 3), {"filters": 4, "size": 3}),
    ((5, 5, 2), {"filters": 3, "size": 3, "stride": 2, "pad": 1}),
    ((4, 4, 2), {"filters": 2, "size": 3, "pad": "same"}),
    ((5, 4, 2), {"filters": 2, "size": 5, "pad": "same", "padding_mode": "edge"}),
    ((5, 7, 2), {"filters": 3, "size": 3, "stride": 2, "pad": 2, "padding_mode": "edge"}),
    ((4, 6, 3), {"filters": 2, "size": 2, "stride": 2}),
    ((3, 3, 3), {"filters": 2, "size": 1}),
    ((5, 5, 2), {"filters": 2, "size": 1, "stride": 2}),
    ((3, 4, 2), {"filters": 2, "size": 1, "pad": 1, "padding_mode": "edge"}),
    ((3, 3, 1), {"filters": 1, "size": 3, "pad": 1, "padding_mode": "edge"}),
    # Pad wider than the stride: some kernel offsets read only zero padding.
    ((2, 2, 2), {"filters": 2, "size": 3, "stride": 3, "pad": 2}),
    ((5, 5, 1), {"filters": 2, "size": 3, "pad": 3}),
    # 8 or more input channels, stride 1, zero padding: dx as the convolution of dout with the
    # turned kernel (pad F-1-P), at every pad from 0 to F-1.
    ((4, 4, 8), {"filters": 3, "size": 3, "pad": 1}),
    ((5, 4, 8), {"filters": 2, "size": 3}),
    ((3, 3, 9), {"filters": 2, "size": 3, "pad": 2}),
    ((5, 5, 8), {"filters": 2, "size": 5, "pad": 1}),
    ((3, 3, 8), {"filters": 2, "size": 1}),  # 1x1 keeps its own path
]


def case_id(case):
    shape, cfg = case
    return "x".join(map(str, shape)) + "-" + "-".join(f"{k}{v}" for k, v in cfg.items())


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients_match_centred_differences(case, training):
    in_shape, cfg = case
    layer = built(in_shape, **cfg)
    x = np.random.default_rng(1).standard_normal((2,) + in_shape)
    errors = check_layer(layer, x, training=training)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < 1e-7, errors


def torch_conv(x, w, b, stride, pad, mode, dout):
    """The same convolution in torch (NCHW, weights (K, C, F, F)); returns outputs and gradients in our layouts."""
    import torch
    import torch.nn.functional as F

    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    if mode == "edge" and pad:
        out = F.conv2d(F.pad(xt, (pad,) * 4, mode="replicate"), wt, bt, stride=stride)
    else:
        out = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    out.backward(torch.tensor(dout.transpose(0, 3, 1, 2).copy()))
    return {
        "out": out.detach().numpy().transpose(0, 2, 3, 1),
        "x": xt.grad.numpy().transpose(0, 2, 3, 1),
        "W": wt.grad.numpy().transpose(2, 3, 1, 0),
        "b": bt.grad.numpy(),
    }


@pytest.mark.torch
@pytest.mark.parametrize(
    "case",
    [
        ((8, 8, 3), {"filters": 4, "size": 3}),
        ((9, 9, 3), {"filters": 4, "size": 3, "stride": 2, "pad": 1}),
        ((9, 9, 2), {"filters": 5, "size": 3, "stride": 2}),
        ((6, 7, 3), {"filters": 4, "size": 3, "pad": 1}),
        ((7, 7, 4), {"filters": 3, "size": 5, "pad": "same"}),
        ((6, 6, 3), {"filters": 4, "size": 3, "pad": "same", "padding_mode": "edge"}),
        ((9, 7, 2), {"filters": 3, "size": 3, "stride": 2, "pad": 1, "padding_mode": "edge"}),
        ((5, 5, 4), {"filters": 6, "size": 1}),
        ((5, 5, 2), {"filters": 3, "size": 3, "stride": 3, "pad": 2}),
        ((6, 6, 8), {"filters": 5, "size": 3, "pad": 1}),
        ((6, 5, 16), {"filters": 4, "size": 3}),
        ((4, 4, 8), {"filters": 3, "size": 3, "pad": 2}),
    ],
    ids=case_id,
)
def test_matches_torch_conv2d(case):
    pytest.importorskip("torch")
    in_shape, cfg = case
    layer = built(in_shape, **cfg)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3,) + in_shape)
    out = layer.forward(x, training=True)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    ref = torch_conv(
        x, layer.params["W"], layer.params["b"], layer.config.stride, layer.pad_amount, layer.config.padding_mode, dout
    )
    ours = {"out": out, "x": dx, "W": layer.grads["W"], "b": layer.grads["b"]}
    for key, value in ours.items():
        err = reference_error(value, ref[key])
        assert err < 1e-10, (key, err)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_inferred_shape_and_params_match_what_is_built(case):
    in_shape, cfg = case
    layer = built(in_shape, **cfg)
    info = layer.infer(in_shape)
    out = layer.forward(np.zeros((2,) + in_shape), training=False)
    assert out.shape == (2,) + info.out_shape
    assert info.params == sum(p.size for p in layer.params.values())
    f, c, k = cfg["size"], in_shape[2], cfg["filters"]
    assert info.params == (f * f * c + 1) * k
    oh, ow, _ = info.out_shape
    assert info.flops == 2 * f * f * c * k * oh * ow + k * oh * ow


def test_output_side_formula():
    # (H - F + 2P)/S + 1 for a CIFAR-sized input, checked by hand: (32 - 5 + 2*2)/1 + 1 = 32,
    # (32 - 3 + 2*1)/2 + 1 = 16.5 -> rejected, (32 - 4 + 2*0)/2 + 1 = 15.
    assert Conv2D(filters=8, size=5, pad=2).infer((32, 32, 3)).out_shape == (32, 32, 8)
    assert Conv2D(filters=8, size=4, stride=2).infer((32, 32, 3)).out_shape == (15, 15, 8)
    assert Conv2D(filters=8, size=7, pad="same").infer((9, 11, 3)).out_shape == (9, 11, 8)


def test_non_integer_output_names_stride_and_shows_the_formula():
    with pytest.raises(ConfigError) as exc:
        Conv2D(filters=8, size=5, stride=2).infer((32, 32, 3))
    assert exc.value.field == "stride"
    assert "(32 - 5 + 2*0)/2 + 1 = 14.5 is not a whole number" in exc.value.message
    assert exc.value.message.startswith("conv2d:")
    assert "change size, stride or pad" in exc.value.message


def test_non_integer_output_width_only():
    with pytest.raises(ConfigError) as exc:
        Conv2D(filters=2, size=3, stride=2, pad=1).infer((9, 8, 1))
    assert "output width (8 - 3 + 2*1)/2 + 1 = 4.5" in exc.value.message


@pytest.mark.parametrize("size,pad,side", [(5, 0, 4), (7, 1, 4), (4, 0, 3)])
def test_kernel_larger_than_padded_input_is_rejected(size, pad, side):
    with pytest.raises(ConfigError) as exc:
        Conv2D(filters=2, size=size, pad=pad).infer((side, side, 1))
    assert exc.value.field == "size"
    assert f"kernel size {size} is larger than the padded input height {side} + 2*{pad} = {side + 2 * pad}" in str(exc.value)


@pytest.mark.parametrize(
    "cfg,field,words",
    [
        ({"filters": 2, "size": 3, "stride": 2, "pad": "same"}, "pad", 'pad "same" needs stride 1'),
        ({"filters": 2, "size": 4, "pad": "same"}, "pad", "odd size"),
        ({"filters": 2, "size": 3, "pad": -1}, "pad", "integer >= 0"),
        ({"filters": 2, "size": 3, "pad": "valid"}, "pad", "integer >= 0"),
        ({"filters": 2, "size": 0}, "size", "greater than or equal to 1"),
        ({"filters": 2, "size": -3}, "size", "greater than or equal to 1"),
        ({"filters": 0, "size": 3}, "filters", "greater than or equal to 1"),
        ({"filters": 2, "size": 3, "stride": 0}, "stride", "greater than or equal to 1"),
        ({"filters": 2, "size": 3, "padding_mode": "reflect"}, "padding_mode", "'zeros' or 'edge'"),
        ({"size": 3}, "filters", "required"),
    ],
)
def test_bad_configurations_name_the_parameter_and_the_rule(cfg, field, words):
    with pytest.raises(ConfigError) as exc:
        Conv2D(**cfg)
    assert exc.value.field == field
    assert words in exc.value.message
    assert exc.value.message.startswith("conv2d:")


def test_vector_input_is_rejected():
    with pytest.raises(ConfigError, match=r"needs an image input"):
        Conv2D(filters=2, size=1).infer((12,))


def test_edge_padding_replicates_the_border():
    # With a single 1x1 filter of weight 1 and pad 2, the output is the edge-padded input.
    layer = Conv2D(filters=1, size=1, pad=2, padding_mode="edge")
    layer.build((3, 4, 1), np.random.default_rng(0), np.float64, gaussian_init)
    layer.params["W"][...] = 1.0
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 1))
    out = layer.forward(x)
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype_and_never_modifies_input(dtype):
    layer = built((5, 5, 2), dtype=dtype, filters=3, size=3, pad=1, padding_mode="edge")
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 2)).astype(dtype)
    x_before = x.copy()
    out = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dtype and dx.dtype == dtype
    assert layer.grads["W"].dtype == dtype and layer.grads["b"].dtype == dtype
    np.testing.assert_array_equal(x, x_before)


def test_reused_buffers_give_fresh_results_across_batch_sizes():
    layer = built((7, 7, 2), filters=3, size=3, stride=2, pad=1)
    rng = np.random.default_rng(5)
    results = []
    for n in (4, 2, 4):
        x = rng.standard_normal((n, 7, 7, 2))
        out = layer.forward(x, training=True)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        fresh = built((7, 7, 2), filters=3, size=3, stride=2, pad=1)
        out_ref = fresh.forward(x, training=True)
        dx_ref = fresh.backward(dout)
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(dx, dx_ref)
        results.append(out)
    # Outputs returned earlier are not overwritten by later calls.
    assert results[0].shape == results[2].shape and not np.array_equal(results[0], results[2])


def test_skips_input_gradient_when_not_needed():
    layer = built((4, 4, 2), filters=2, size=3, pad=1)
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 2))
    out = layer.forward(x, training=True)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    layer.backward(dout)
    dw = layer.grads["W"].copy()
    layer.need_input_grad = False
    layer.forward(x, training=True)
    assert layer.backward(dout) is None
    np.testing.assert_allclose(layer.grads["W"], dw)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=(0, 1, 2)))


def test_build_passes_fans_to_initializer():
    seen = {}

    def recording_init(shape, fan_in, fan_out, rng, dtype=np.float32):
        seen.update(shape=shape, fan_in=fan_in, fan_out=fan_out)
        return np.ones(shape, dtype=dtype)

    layer = Conv2D(filters=8, size=3)
    layer.build((6, 6, 4), np.random.default_rng(0), np.float32, recording_init)
    assert seen == {"shape": (3, 3, 4, 8), "fan_in": 3 * 3 * 4, "fan_out": 3 * 3 * 8}
    np.testing.assert_array_equal(layer.params["b"], np.zeros(8, dtype=np.float32))


def test_hyperparameters_round_trip():
    layer = Conv2D(filters=4, size=3, pad="same", padding_mode="edge")
    assert Conv2D(layer.hyperparameters()).config == layer.config


def test_functional_pair_without_buffers_matches_the_layer():
    from dlcore.layers.conv2d import conv2d_backward, conv2d_forward

    layer = built((5, 5, 2), filters=3, size=3, pad=1, padding_mode="edge")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 5, 5, 2))
    out, cache = conv2d_forward(x, layer.params["W"], layer.params["b"], 1, 1, "edge")
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    np.testing.assert_array_equal(out, layer.forward(x, training=True))
    np.testing.assert_array_equal(dx, layer.backward(dout))
    np.testing.assert_array_equal(dw, layer.grads["W"])
    np.testing.assert_array_equal(db, layer.grads["b"])


def test_default_initializer_is_he_with_fan_in():
    pytest.importorskip("dlcore.initializers.he")
    layer = Conv2D(filters=64, size=3)
    layer.build((8, 8, 16), np.random.default_rng(0), np.float64)
    expected = np.sqrt(2 / (3 * 3 * 16))
    assert abs(layer.params["W"].std() - expected) < 0.1 * expected
