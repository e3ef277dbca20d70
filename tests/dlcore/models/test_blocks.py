"""Sequential, Residual and Inception: gradients, shape inference, naming, errors.

The container logic is tested on two tiny local layers (a last-axis affine and a
2x subsampler) so these tests depend on nothing but the containers; the last
tests build the registered blocks from real conv2d/relu entries.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import Field

from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.gradcheck import check_layer
from dlcore.layers.inception import Inception
from dlcore.layers.residual import Residual
from dlcore.layers.sequential import Sequential, make_layer
from dlcore.registry import Registry


class Dense(Layer):
    """Test double: x (..., C) @ W (C, units) + b, i.e. a 1x1 convolution on images."""

    name = "dense"
    regularized = ("W",)

    class Config(Config):
        units: int = Field(4, ge=1)

    def infer(self, s):
        c, k = s[-1], self.config.units
        return ShapeInfo(tuple(s[:-1]) + (k,), c * k + k, 2 * c * k * int(np.prod(s[:-1])))

    def build(self, s, rng, dtype=np.float32, initializer=None):
        super().build(s, rng, dtype, initializer)
        k = self.config.units
        self.params = {
            "W": (rng.standard_normal((s[-1], k)) * 0.5).astype(dtype),
            "b": (rng.standard_normal(k) * 0.1).astype(dtype),
        }

    def forward(self, x, training=False, rng=None):
        self.cache = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        x, c = self.cache, self.cache.shape[-1]
        d2 = dout.reshape(-1, dout.shape[-1])
        self.grads = {"W": x.reshape(-1, c).T @ d2, "b": d2.sum(0)}
        return dout @ self.params["W"].T if self.need_input_grad else None


class Half(Layer):
    """Test double: keeps every second row and column, (N, H, W, C) -> (N, H/2, W/2, C)."""

    name = "half"

    def infer(self, s):
        if s[0] % 2 or s[1] % 2:
            raise ConfigError("size", f"half: {s[0]}x{s[1]} is not even")
        return ShapeInfo((s[0] // 2, s[1] // 2, s[2]))

    def forward(self, x, training=False, rng=None):
        self.cache = x.shape
        return x[:, ::2, ::2, :].copy()

    def backward(self, dout):
        dx = np.zeros(self.cache, dtype=dout.dtype)
        dx[:, ::2, ::2, :] = dout
        return dx


REG = Registry(
    {"layers": {"dense": Dense, "half": Half, "residual": Residual, "inception": Inception}}
)


def small_init(shape, fan_in, fan_out, rng, dtype=np.float32):
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)


def built(layer, in_shape, dtype=np.float64, seed=0):
    layer.build(in_shape, np.random.default_rng(seed), dtype, small_init)
    return layer


def batch(in_shape, n=3, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(in_shape))


def assert_gradients(layer, x, training=True, seed=0):
    errors = check_layer(layer, x, training=training, seed=seed)
    assert set(errors) == {"x"} | set(layer.params), errors
    assert max(errors.values()) < 1e-7, errors


def assert_infer_matches(layer, in_shape):
    info = layer.infer(in_shape)
    out = layer.forward(batch(in_shape, n=2), training=False)
    assert out.shape[1:] == tuple(info.out_shape)
    assert info.params == sum(a.size for a in layer.params.values())


# --------------------------------------------------------------------------- sequential


def test_sequential_chains_shapes_params_and_gradients():
    seq = Sequential(
        {
            "layers": [
                {"type": "dense", "units": 5},
                {"type": "half"},
                {"type": "dense", "units": 3},
            ]
        },
        registry=REG,
    )
    rows = seq.infer_rows((4, 6, 2))
    assert [r["out_shape"] for r in rows] == [(4, 6, 5), (2, 3, 5), (2, 3, 3)]
    assert [r["type"] for r in rows] == ["dense", "half", "dense"]
    assert [r["index"] for r in rows] == [0, 1, 2]
    built(seq, (4, 6, 2))
    assert list(seq.params) == ["0.W", "0.b", "2.W", "2.b"]
    assert [k for k, _ in seq.regularized_params()] == ["0.W", "2.W"]
    assert seq.infer((4, 6, 2)).params == sum(r["params"] for r in rows)
    assert_infer_matches(seq, (4, 6, 2))
    assert_gradients(seq, batch((4, 6, 2)))
    assert list(seq.grads) == list(seq.params)


def test_sequential_views_write_through_to_children():
    seq = built(
        Sequential({"layers": [{"type": "dense"}, {"type": "dense", "units": 2}]}, registry=REG),
        (3,),
    )
    replacement = np.ones((4, 2))
    seq.params["1.W"] = replacement
    assert seq.children[1].params["W"] is replacement
    assert dict(seq.named_params())["1.W"] is replacement
    with pytest.raises(KeyError):
        seq.params["7.W"]


def test_first_child_skips_input_gradient_when_the_stack_does():
    seq = built(
        Sequential({"layers": [{"type": "dense"}, {"type": "dense", "units": 2}]}, registry=REG),
        (3,),
    )
    seq.need_input_grad = False
    seq.forward(batch((3,)), training=True)
    assert seq.backward(np.ones((3, 2))) is None
    assert seq.children[0].need_input_grad is False and seq.children[1].need_input_grad is True
    assert set(seq.grads) == set(seq.params)


def test_sequential_of_instances_round_trips_hyperparameters():
    seq = Sequential.of([Dense(units=3), Half()])
    again = Sequential(seq.hyperparameters(), registry=REG)
    assert [c.hyperparameters() for c in again.children] == [
        c.hyperparameters() for c in seq.children
    ]
    assert [type(c) for c in seq.layers_flat()] == [Dense, Half]


def test_make_layer_errors_name_the_full_path():
    with pytest.raises(ConfigError) as exc:
        make_layer({"type": "dense", "units": 0}, REG, "model.layers[2]")
    assert exc.value.field == "model.layers[2].units"
    with pytest.raises(ConfigError) as exc:
        make_layer({"type": "gelu"}, REG, "model.layers[2]")
    assert exc.value.field == "model.layers[2].type" and "gelu" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        make_layer({"units": 3}, REG, "model.layers[0]")
    assert exc.value.field == "model.layers[0].type"
    with pytest.raises(ConfigError) as exc:
        Sequential(
            {
                "layers": [
                    {
                        "type": "residual",
                        "layers": [{"type": "dense"}, {"type": "dense", "unit": 3}],
                    }
                ]
            },
            REG,
            "model.layers",
        )
    assert exc.value.field == "model.layers[0].layers[1].unit"
    with pytest.raises(ConfigError) as exc:
        Sequential(
            {
                "layers": [
                    {"type": "residual", "layers": [{"type": "dense"}], "stochastic_depth": 1.0}
                ]
            },
            REG,
            "model.layers",
        )
    assert exc.value.field == "model.layers[0].stochastic_depth"


def test_infer_errors_are_relative_to_the_stack():
    seq = Sequential(
        {
            "layers": [
                {"type": "dense"},
                {
                    "type": "residual",
                    "layers": [{"type": "dense"}, {"type": "half"}],
                    "shortcut": "projection",
                },
            ]
        },
        REG,
    )
    with pytest.raises(ConfigError) as exc:
        seq.infer_rows((5, 4, 2))
    assert exc.value.field == "[1].layers[1].size"


# --------------------------------------------------------------------------- residual


@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("in_shape", [(5,), (3, 4, 2)])
def test_residual_identity_gradients_and_infer(activation, in_shape):
    c = in_shape[-1]
    block = built(
        Residual(
            {
                "layers": [{"type": "dense", "units": 3}, {"type": "dense", "units": c}],
                "activation": activation,
            },
            registry=REG,
        ),
        in_shape,
    )
    assert block.shortcut is None and list(block.params) == ["0.W", "0.b", "1.W", "1.b"]
    assert_infer_matches(block, in_shape)
    assert_gradients(block, batch(in_shape))


def test_residual_identity_computes_relu_of_x_plus_branch():
    block = built(Residual({"layers": [{"type": "dense", "units": 4}]}, registry=REG), (4,))
    x = batch((4,))
    branch = x @ block.params["0.W"] + block.params["0.b"]
    np.testing.assert_array_equal(block.forward(x), np.maximum(x + branch, 0))


def test_residual_projection_matches_downsampling_and_channels():
    block = built(
        Residual(
            {"layers": [{"type": "half"}, {"type": "dense", "units": 5}], "shortcut": "projection"},
            registry=REG,
        ),
        (4, 6, 2),
    )
    assert block.shortcut.config.stride == (2, 2)
    assert block.params["shortcut.W"].shape == (2, 5)
    assert [k for k, _ in block.regularized_params()] == ["1.W", "shortcut.W"]
    assert_infer_matches(block, (4, 6, 2))
    assert_gradients(block, batch((4, 6, 2)))
    # the shortcut is a strided 1x1 convolution: out = relu(x[::2, ::2] Ws + bs + F(x))
    x = batch((4, 6, 2))
    shortcut = x[:, ::2, ::2, :] @ block.params["shortcut.W"] + block.params["shortcut.b"]
    branch = x[:, ::2, ::2, :] @ block.params["1.W"] + block.params["1.b"]
    np.testing.assert_allclose(block.forward(x), np.maximum(shortcut + branch, 0), rtol=1e-12)


def test_residual_projection_on_vectors_and_skipping_input_gradient():
    block = built(
        Residual(
            {"layers": [{"type": "dense", "units": 3}], "shortcut": "projection"}, registry=REG
        ),
        (5,),
    )
    assert_gradients(block, batch((5,)))
    block.need_input_grad = False
    block.forward(batch((5,)), training=True)
    assert block.backward(np.ones((3, 3))) is None
    assert set(block.grads) == set(block.params)


def test_residual_rejects_impossible_shortcuts():
    with pytest.raises(ConfigError) as exc:
        Residual({"layers": [{"type": "dense", "units": 3}]}, registry=REG).infer((4, 4, 2))
    assert (
        exc.value.field == "shortcut"
        and "(2, 4, 4)" in exc.value.message  # the user's (C, H, W) of the internal (4, 4, 2)
        and "(3, 4, 4)" in exc.value.message
    )
    with pytest.raises(ConfigError) as exc:
        Residual(
            {"layers": [{"type": "dense", "units": 3}, {"type": "half"}], "shortcut": "projection"},
            registry=REG,
        ).infer((4, 5, 2))
    assert exc.value.field == "layers[1].size"
    projecting = Residual({"layers": [{"type": "dense"}], "shortcut": "projection"}, registry=REG)
    with pytest.raises(ConfigError) as exc:
        projecting._projection_for((6, 6, 2), (4, 6, 2))
    assert exc.value.field == "shortcut" and "6/4 = 1.5 is not a whole number" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        projecting._projection_for((6, 6, 2), (12,))
    assert "images to images" in exc.value.message


def test_stochastic_depth_skips_in_training_and_scales_in_evaluation():
    p = 0.25
    block = built(
        Residual({"layers": [{"type": "dense", "units": 4}], "stochastic_depth": p}, registry=REG),
        (4,),
    )
    assert block.stochastic and block.mode_dependent
    x = batch((4,))
    branch = x @ block.params["0.W"] + block.params["0.b"]
    np.testing.assert_allclose(
        block.forward(x, training=False), np.maximum(x + (1 - p) * branch, 0), rtol=1e-12
    )
    rng = np.random.default_rng(3)
    outs = [block.forward(x, training=True, rng=rng) for _ in range(400)]
    skipped = [np.array_equal(o, np.maximum(x, 0)) for o in outs]
    kept = [np.allclose(o, np.maximum(x + branch, 0)) for o in outs]
    assert all(s != k for s, k in zip(skipped, kept))
    assert abs(np.mean(skipped) - p) < 0.07  # 400 draws: sd of the fraction is about 0.022
    with pytest.raises(ValueError):
        block.forward(x, training=True, rng=None)


@pytest.mark.parametrize("seed", range(6))
def test_stochastic_depth_gradients_whether_or_not_the_branch_is_skipped(seed):
    block = built(
        Residual(
            {
                "layers": [{"type": "dense", "units": 3}, {"type": "dense", "units": 4}],
                "stochastic_depth": 0.5,
            },
            registry=REG,
        ),
        (4,),
    )
    assert_gradients(block, batch((4,)), training=True, seed=seed)
    assert_gradients(block, batch((4,)), training=False, seed=seed)
    skipped = np.random.default_rng(seed).random() < 0.5
    block.forward(batch((4,)), training=True, rng=np.random.default_rng(seed))
    block.backward(np.ones((3, 4)))
    assert set(block.grads) == set(block.params)
    assert (not any(g.any() for g in block.grads.values())) == skipped


# --------------------------------------------------------------------------- inception


def test_inception_concatenates_branches_and_checks_gradients():
    block = Inception(
        {
            "branches": [
                [{"type": "dense", "units": 2}],
                [{"type": "dense", "units": 3}, {"type": "dense", "units": 1}],
                [],
            ]
        },
        registry=REG,
    )
    info = block.infer((3, 4, 2))
    assert info.out_shape == (3, 4, 2 + 1 + 2)
    built(block, (3, 4, 2))
    assert list(block.params)[:2] == ["branches.0.0.W", "branches.0.0.b"]
    assert "branches.1.1.W" in block.params
    assert_infer_matches(block, (3, 4, 2))
    assert_gradients(block, batch((3, 4, 2)))
    x = batch((3, 4, 2))
    out = block.forward(x)
    np.testing.assert_array_equal(
        out[..., 3:], x
    )  # the empty branch passes the input through, last
    np.testing.assert_allclose(
        out[..., :2],
        x @ block.params["branches.0.0.W"] + block.params["branches.0.0.b"],
        rtol=1e-12,
    )


def test_inception_rejects_branches_of_different_sizes():
    block = Inception(
        {"branches": [[{"type": "dense"}], [{"type": "dense"}], [{"type": "half"}]]}, registry=REG
    )
    with pytest.raises(ConfigError) as exc:
        block.infer((4, 4, 2))
    assert (
        exc.value.field == "branches[2]"
        and "branch 2 outputs 2x2 but branch 0 outputs 4x4" in exc.value.message
    )
    with pytest.raises(ConfigError) as exc:
        block.infer((6,))
    with pytest.raises(ConfigError) as exc:
        Inception({"branches": [[{"type": "half"}]]}, registry=REG).infer((3, 4, 2))
    assert exc.value.field == "branches[0][0].size"


def test_nested_blocks_name_and_check_every_array():
    seq = Sequential(
        {
            "layers": [
                {"type": "dense", "units": 3},
                {
                    "type": "inception",
                    "branches": [
                        [{"type": "dense", "units": 2}],
                        [{"type": "residual", "layers": [{"type": "dense", "units": 3}]}],
                    ],
                },
                {
                    "type": "residual",
                    "layers": [{"type": "half"}, {"type": "dense", "units": 4}],
                    "shortcut": "projection",
                },
            ]
        },
        registry=REG,
    )
    built(seq, (4, 4, 2))
    names = list(seq.params)
    assert "1.branches.1.0.0.W" in names and "2.shortcut.W" in names and "2.1.W" in names
    assert [type(layer).__name__ for layer in seq.layers_flat()] == [
        "Dense",
        "Dense",
        "Dense",
        "Half",
        "Dense",
        "Projection",
    ]
    assert_infer_matches(seq, (4, 4, 2))
    assert_gradients(seq, batch((4, 4, 2)))


# --------------------------------------------------------------------------- with the registered conv2d and relu


def real_registry():
    from dlcore.activations.relu import ReLU
    from dlcore.layers.conv2d import Conv2D

    return Registry(
        {
            "layers": {"conv2d": Conv2D, "residual": Residual, "inception": Inception},
            "activations": {"relu": ReLU},
        }
    )


@pytest.mark.parametrize("cls", [Residual, Inception])
def test_declared_examples_build_check_and_infer(cls):
    reg = real_registry()
    for example in cls.examples:
        for shape in cls.example_shapes:
            block = built(cls(example, registry=reg), shape)
            assert_infer_matches(block, shape)
            assert_gradients(block, batch(shape, n=2))


# --------------------------------------------------------------------------- PyTorch parity (float64)


def torch_conv_weight(w):
    import torch

    return torch.tensor(
        w.transpose(3, 2, 0, 1).copy(), requires_grad=True
    )  # (F, F, C, K) -> (K, C, F, F)


def relative(ours, theirs):
    theirs = np.asarray(theirs)
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.torch
def test_resnet_block_with_projection_matches_torch():
    import torch
    import torch.nn.functional as F

    block = Residual(
        {
            "layers": [
                {"type": "conv2d", "filters": 4, "size": 4, "stride": 2, "pad": 1},
                {"type": "relu"},
                {"type": "conv2d", "filters": 4, "size": 3, "pad": 1},
            ],
            "shortcut": "projection",
        },
        registry=real_registry(),
    )
    built(block, (6, 6, 3))
    x = batch((6, 6, 3), n=2)
    dout = np.random.default_rng(5).standard_normal((2, 3, 3, 4))
    out = block.forward(x, training=True)
    dx = block.backward(dout)

    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    w0, w2 = torch_conv_weight(block.params["0.W"]), torch_conv_weight(block.params["2.W"])
    b0, b2 = (torch.tensor(block.params[k], requires_grad=True) for k in ("0.b", "2.b"))
    ws = torch.tensor(block.params["shortcut.W"].T[:, :, None, None].copy(), requires_grad=True)
    bs = torch.tensor(block.params["shortcut.b"], requires_grad=True)
    branch = F.conv2d(F.relu(F.conv2d(tx, w0, b0, stride=2, padding=1)), w2, b2, padding=1)
    tout = F.relu(F.conv2d(tx, ws, bs, stride=2) + branch)
    tout.backward(torch.tensor(dout.transpose(0, 3, 1, 2).copy()))

    assert relative(out, tout.detach().numpy().transpose(0, 2, 3, 1)) < 1e-10
    assert relative(dx, tx.grad.numpy().transpose(0, 2, 3, 1)) < 1e-10
    assert relative(block.grads["0.W"], w0.grad.numpy().transpose(2, 3, 1, 0)) < 1e-10
    assert relative(block.grads["2.W"], w2.grad.numpy().transpose(2, 3, 1, 0)) < 1e-10
    assert relative(block.grads["shortcut.W"], ws.grad.numpy()[:, :, 0, 0].T) < 1e-10
    for key, tensor in (("0.b", b0), ("2.b", b2), ("shortcut.b", bs)):
        assert relative(block.grads[key], tensor.grad.numpy()) < 1e-10


@pytest.mark.torch
def test_inception_module_matches_torch():
    import torch
    import torch.nn.functional as F

    from dlcore.architectures.googlenet import inception_module
    from dlcore.layers.pooling import MaxPool

    registry = Registry(
        {
            "layers": {"conv2d": real_registry().get_layer("conv2d"), "maxpool": MaxPool},
            "activations": {"relu": real_registry().get_layer("relu")},
        }
    )
    entry = inception_module(4, 5)
    block = Inception({"branches": entry["branches"]}, registry=registry)
    built(block, (5, 5, 3))
    x = batch((5, 5, 3), n=2)
    out = block.forward(x, training=True)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    dx = block.backward(dout)

    tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    tensors = {}

    def conv(key, inp, **kw):
        w, b = (
            torch_conv_weight(block.params[f"{key}.W"]),
            torch.tensor(block.params[f"{key}.b"], requires_grad=True),
        )
        tensors[key] = (w, b)
        return F.conv2d(inp, w, b, **kw)

    branches = [
        conv("branches.0.0", tx),
        conv("branches.1.2", F.relu(conv("branches.1.0", tx)), padding=1),
        conv("branches.2.2", F.relu(conv("branches.2.0", tx)), padding=2),
        conv("branches.3.1", F.max_pool2d(tx, 3, stride=1), padding=1),
    ]
    tout = torch.cat(branches, dim=1)
    tout.backward(torch.tensor(dout.transpose(0, 3, 1, 2).copy()))
    assert relative(out, tout.detach().numpy().transpose(0, 2, 3, 1)) < 1e-10
    assert relative(dx, tx.grad.numpy().transpose(0, 2, 3, 1)) < 1e-10
    for key, (w, b) in tensors.items():
        assert relative(block.grads[f"{key}.W"], w.grad.numpy().transpose(2, 3, 1, 0)) < 1e-10
        assert relative(block.grads[f"{key}.b"], b.grad.numpy()) < 1e-10
