"""Max, average and global average pooling: gradients, PyTorch parity, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer, reference_error
from dlcore.layers.pooling import AvgPool, GlobalAvgPool, MaxPool


def tie_free(shape, seed=0):
    """Distinct values at least 1e-2 apart (a shuffled ramp), so max-pool has no ties or near-ties."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.05 - size * 0.025).reshape(shape)


def built(cls, in_shape, **cfg):
    layer = cls(**cfg)
    layer.build(in_shape, np.random.default_rng(0), np.float64)
    return layer


# (per-sample (H, W, C), config): non-overlapping (reshape path), overlapping, gaps (s > m), non-square.
POOL_CASES = [
    ((4, 4, 2), {"size": 2}),
    ((6, 4, 3), {"size": 2, "stride": 2}),
    ((6, 6, 1), {"size": 3}),
    ((5, 5, 2), {"size": 3, "stride": 2}),
    ((4, 5, 2), {"size": 2, "stride": 1}),
    ((7, 7, 1), {"size": 2, "stride": 5}),
    ((3, 3, 2), {"size": 1}),
]


def case_id(case):
    shape, cfg = case
    return "x".join(map(str, shape)) + "-" + "-".join(f"{k}{v}" for k, v in cfg.items())


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls", [MaxPool, AvgPool])
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_gradients_match_centred_differences(cls, case, training):
    in_shape, cfg = case
    layer = built(cls, in_shape, **cfg)
    errors = check_layer(layer, tie_free((2,) + in_shape), training=training)
    assert set(errors) == {"x"}
    assert errors["x"] < 1e-7, errors


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("in_shape", [(4, 4, 2), (3, 5, 1), (1, 1, 3)])
def test_global_avgpool_gradients(in_shape, training):
    layer = built(GlobalAvgPool, in_shape)
    errors = check_layer(layer, np.random.default_rng(2).standard_normal((3,) + in_shape), training=training)
    assert errors["x"] < 1e-7, errors


def torch_pool(kind, x, size, stride, dout):
    import torch
    import torch.nn.functional as F

    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    if kind == "max":
        out = F.max_pool2d(xt, size, stride)
    elif kind == "avg":
        out = F.avg_pool2d(xt, size, stride)
    else:
        out = xt.mean(dim=(2, 3))
    out.backward(torch.tensor(dout if kind == "global" else dout.transpose(0, 3, 1, 2).copy()))
    out = out.detach().numpy()
    return (out if kind == "global" else out.transpose(0, 2, 3, 1)), xt.grad.numpy().transpose(0, 2, 3, 1)


@pytest.mark.torch
@pytest.mark.parametrize("kind,cls", [("max", MaxPool), ("avg", AvgPool)])
@pytest.mark.parametrize(
    "case",
    [((8, 8, 3), {"size": 2}), ((9, 9, 2), {"size": 3, "stride": 2}), ((6, 8, 3), {"size": 3, "stride": 1}),
     ((8, 8, 2), {"size": 2, "stride": 3})],
    ids=case_id,
)
def test_matches_torch_pooling(kind, cls, case):
    pytest.importorskip("torch")
    in_shape, cfg = case
    layer = built(cls, in_shape, **cfg)
    x = tie_free((3,) + in_shape, seed=4)
    out = layer.forward(x, training=True)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    dx = layer.backward(dout)
    out_ref, dx_ref = torch_pool(kind, x, cfg["size"], cfg.get("stride", cfg["size"]), dout)
    assert reference_error(out, out_ref) < 1e-10
    assert reference_error(dx, dx_ref) < 1e-10


@pytest.mark.torch
def test_global_avgpool_matches_torch_mean():
    pytest.importorskip("torch")
    layer = built(GlobalAvgPool, (5, 4, 3))
    x = np.random.default_rng(6).standard_normal((2, 5, 4, 3))
    out = layer.forward(x)
    dout = np.random.default_rng(7).standard_normal(out.shape)
    dx = layer.backward(dout)
    out_ref, dx_ref = torch_pool("global", x, None, None, dout)
    assert reference_error(out, out_ref) < 1e-10
    assert reference_error(dx, dx_ref) < 1e-10


@pytest.mark.parametrize("cls", [MaxPool, AvgPool])
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_inferred_shape_matches_forward_and_keeps_depth(cls, case):
    in_shape, cfg = case
    layer = built(cls, in_shape, **cfg)
    info = layer.infer(in_shape)
    out = layer.forward(tie_free((2,) + in_shape))
    assert out.shape == (2,) + info.out_shape
    assert info.out_shape[2] == in_shape[2]
    assert info.params == 0 and not layer.params
    m = cfg["size"]
    s = cfg.get("stride") or m
    assert info.out_shape[:2] == ((in_shape[0] - m) // s + 1, (in_shape[1] - m) // s + 1)


def test_reference_values_by_hand():
    # One 4x4 channel, 2x2 windows: maxima and means worked out by hand.
    x = np.array([[1, 2, 5, 3], [4, 0, 6, 7], [9, 8, 2, 1], [3, 2, 0, 4]], dtype=np.float64)[None, :, :, None]
    mp = built(MaxPool, (4, 4, 1), size=2).forward(x)[0, :, :, 0]
    ap = built(AvgPool, (4, 4, 1), size=2).forward(x)[0, :, :, 0]
    gp = built(GlobalAvgPool, (4, 4, 1)).forward(x)
    np.testing.assert_array_equal(mp, [[4, 7], [9, 4]])
    np.testing.assert_array_equal(ap, [[7 / 4, 21 / 4], [22 / 4, 7 / 4]])
    np.testing.assert_allclose(gp, [[57 / 16]])


def test_max_ties_give_every_tied_entry_the_gradient():
    layer = built(MaxPool, (2, 2, 1), size=2)
    x = np.array([[[[3.0], [3.0]], [[1.0], [0.0]]]])
    layer.forward(x)
    dx = layer.backward(np.array([[[[2.0]]]]))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[2.0, 2.0], [0.0, 0.0]])


def test_stride_defaults_to_size():
    layer = MaxPool(size=3)
    assert layer.config.stride is None and layer.stride == 3
    assert layer.infer((9, 6, 4)).out_shape == (3, 2, 4)


@pytest.mark.parametrize("cls", [MaxPool, AvgPool])
def test_non_integer_output_shows_the_formula(cls):
    with pytest.raises(ConfigError) as exc:
        cls(size=2).infer((7, 8, 3))
    assert exc.value.field == "stride"
    assert exc.value.message == (
        f"{cls.name}: output height (7 - 2)/2 + 1 = 3.5 is not a whole number; change size or stride"
    )


@pytest.mark.parametrize("cls", [MaxPool, AvgPool])
def test_window_larger_than_input_is_rejected(cls):
    with pytest.raises(ConfigError) as exc:
        cls(size=5).infer((4, 6, 1))
    assert exc.value.field == "size"
    assert "window size 5 is larger than the input height 4" in exc.value.message


@pytest.mark.parametrize("cls", [MaxPool, AvgPool])
@pytest.mark.parametrize("cfg,field", [({"size": 0}, "size"), ({"size": -2}, "size"), ({"size": 2, "stride": 0}, "stride"),
                                       ({"size": 2, "pad": 1}, "pad"), ({}, "size")])
def test_bad_parameters_name_the_field(cls, cfg, field):
    with pytest.raises(ConfigError) as exc:
        cls(**cfg)
    assert exc.value.field == field
    assert exc.value.message.startswith(cls.name + ":")


@pytest.mark.parametrize("cls", [MaxPool, AvgPool, GlobalAvgPool])
def test_vector_input_is_rejected(cls):
    layer = cls(size=2) if cls is not GlobalAvgPool else cls()
    with pytest.raises(ConfigError, match="needs an image input"):
        layer.infer((10,))


def test_global_avgpool_shape():
    info = GlobalAvgPool().infer((5, 3, 7))
    assert info.out_shape == (7,) and info.params == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [lambda: MaxPool(size=2), lambda: MaxPool(size=3, stride=1), lambda: AvgPool(size=2),
     lambda: AvgPool(size=2, stride=1), lambda: GlobalAvgPool()],
)
def test_keeps_dtype_and_never_modifies_input(make, dtype):
    layer = make()
    layer.build((4, 4, 2), np.random.default_rng(0), dtype)
    x = tie_free((2, 4, 4, 2)).astype(dtype)
    x_before = x.copy()
    out = layer.forward(x, training=True)
    dout = np.ones_like(out)
    dx = layer.backward(dout)
    assert out.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, np.ones_like(out))
    dx[...] = 0  # the returned gradient is a writable array of its own


def test_hyperparameters_round_trip():
    for layer in (MaxPool(size=3, stride=2), AvgPool(size=2), GlobalAvgPool()):
        assert type(layer)(layer.hyperparameters()).config == layer.config
