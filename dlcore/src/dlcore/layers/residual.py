"""The residual block: out = relu(shortcut(x) + F(x)), F a stack of layers (He et al., 2015).

The shortcut is the identity when F keeps the shape, or a projection: a 1x1
convolution of stride s that matches F's downsampling and channel count, with s
computed from the shapes (``H / H'``, which must be a whole number).

Stochastic depth (Huang et al., 2016): in training, with probability p the whole
branch F is skipped for the mini-batch (the block is its shortcut, then the
activation); in evaluation the branch is scaled by its survival rate 1 - p.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, Shape, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.initializers import draw_weights
from dlcore.layers.sequential import Container, Sequential
from dlcore.layout import shape_to_public
from dlcore.parallel import parallel_over_batch


def projection_forward(x, w, b, stride):
    """A 1x1 convolution of stride ``stride`` (or an affine map for vectors).

    Inputs:
    - x: (N, H, W, C) or (N, C)
    - w: (C, K) weights (a 1x1 convolution's kernel without its two unit axes)
    - b: (K,) biases
    - stride: (sh, sw) for images; ignored for vectors

    Returns:
    - out: (N, H', W', K) with H' = ceil(H / sh), or (N, K)
    - cache: (x_shape, columns, w, stride)
    """
    if x.ndim == 4:
        sh, sw = stride
        picked = x[:, ::sh, ::sw, :]
        out_shape = picked.shape[:3] + (w.shape[1],)
        columns = picked.reshape(-1, x.shape[3])
    else:
        out_shape = (x.shape[0], w.shape[1])
        columns = x
    out = (columns @ w + b).reshape(out_shape)
    return out, (x.shape, columns, w, stride)


def projection_backward(dout, cache, need_input_grad=True):
    """Gradients of :func:`projection_forward`.

    Inputs:
    - dout: (N, H', W', K) or (N, K)
    - cache: from projection_forward

    Returns:
    - dx: like x (None when ``need_input_grad`` is False)
    - dw: (C, K)
    - db: (K,)
    """
    x_shape, columns, w, stride = cache
    dout2 = dout.reshape(-1, w.shape[1])
    dw = columns.T @ dout2
    db = xp.ones(dout2.shape[0], dtype=dout2.dtype) @ dout2
    if not need_input_grad:
        return None, dw, db
    dcolumns = dout2 @ w.T
    if len(x_shape) == 4:
        sh, sw = stride
        dx = xp.zeros(x_shape, dtype=dout.dtype)
        dx[:, ::sh, ::sw, :] = dcolumns.reshape(dout.shape[:3] + (x_shape[3],))
    else:
        dx = dcolumns
    return dx, dw, db


class Projection(Layer):
    """The projection shortcut of a residual block: a 1x1 convolution with a stride.

    Not a registered component: a residual block creates it from the shapes.
    Params: ``W`` (C, K), ``b`` (K,).
    """

    name = "projection"
    summary = "1x1 convolution matching a residual branch's shape."
    regularized = ("W",)

    class Config(Config):
        filters: int = Field(ge=1, description="Output channels K.")
        stride: tuple[int, int] = Field((1, 1), description="Vertical and horizontal stride.")

    def infer(self, in_shape: Shape) -> ShapeInfo:
        k = self.config.filters
        if len(in_shape) == 3:
            h, w, c = in_shape
            sh, sw = self.config.stride
            out = (-(-h // sh), -(-w // sw), k)
            positions = out[0] * out[1]
        else:
            c, out, positions = in_shape[0], (k,), 1
        return ShapeInfo(out, c * k + k, (2 * c * k + k) * positions)

    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        super().build(in_shape, rng, dtype, initializer)
        c, k = in_shape[-1], self.config.filters
        self.params = {
            "W": draw_weights(initializer, (c, k), c, k, rng, dtype),
            "b": xp.zeros(k, dtype=dtype),
        }

    def forward(self, x, training=False, rng=None):
        out, self.cache = projection_forward(
            x, self.params["W"], self.params["b"], self.config.stride
        )
        return out

    def backward(self, dout):
        dx, dw, db = projection_backward(dout, self.cache, self.need_input_grad)
        self.grads = {"W": dw, "b": db}
        return dx


def relu_add_forward(shortcut, branch, scale, activation, branch_is_free=False):
    """out = relu(shortcut + scale * branch) (no relu when ``activation`` is None).

    Inputs:
    - shortcut: (N, ...) the shortcut's output
    - branch: (N, ...) like shortcut, or None when the branch was skipped
    - scale: the branch's multiplier (1, or 1 - p in evaluation)
    - activation: "relu" or None
    - branch_is_free: True when nothing else holds ``branch`` (its layer returned a new array
      and keeps none of it in its cache): the sum and the relu are then written into it
      in place, with no new array.

    Returns:
    - out: like shortcut
    - cache: the activation mask (or None), in the values' dtype
    """
    if branch is None:
        z, owned = shortcut, False
    elif branch_is_free:
        z, owned = branch, True
    else:
        z, owned = xp.empty_like(shortcut), True
    mask = None if activation is None else xp.empty(z.shape, dtype=z.dtype)

    def rows(i, j):
        if branch is not None:
            if scale != 1.0:
                xp.multiply(branch[i:j], scale, out=z[i:j])
                z[i:j] += shortcut[i:j]
            else:
                xp.add(shortcut[i:j], branch[i:j], out=z[i:j])
        if mask is not None:
            # Multiplying by a saved float mask is several times faster in backward than np.where.
            mask[i:j] = z[i:j] > 0
            if owned:
                z[i:j] *= mask[i:j]

    parallel_over_batch(rows, z.shape[0], bytes_per_item=z.nbytes // max(len(z), 1))
    if mask is not None and not owned:
        z = z * mask  # the skipped branch's shortcut may be the block's input: never written
    return z, mask


def relu_add_backward(dout, cache):
    """dout: like out -> gradient of the sum (the same for shortcut and scaled branch)."""
    return dout if cache is None else dout * cache


class ResidualConfig(Config):
    layers: list[dict[str, Any]] = Field(
        min_length=1, description='The residual branch F: spec entries {"type": name, ...params}.'
    )
    shortcut: Literal["identity", "projection"] = Field(
        "identity",
        description="identity (F must keep the shape) or projection (1x1 convolution matching F's stride and channels).",
    )
    stochastic_depth: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Probability of skipping the branch in training; evaluation scales it by 1 - p.",
    )
    activation: Literal["relu"] | None = Field(
        "relu", description="Applied after the sum; null for none."
    )


class Residual(Container):
    """out = relu(shortcut(x) + F(x)), with an identity or projection shortcut and stochastic depth.

    Children are named like a stack: ``"0.W"`` is F's first layer, and the
    projection's arrays are ``"shortcut.W"``, ``"shortcut.b"``.
    """

    name = "residual"
    summary = (
        "Residual block: relu(x + F(x)) with identity or projection shortcut and stochastic depth."
    )
    Config = ResidualConfig
    example_shapes: ClassVar[tuple[Shape, ...]] = ((4, 4, 3),)
    examples = (
        {"layers": [{"type": "conv2d", "filters": 3, "size": 3, "pad": 1}]},
        {
            "layers": [{"type": "conv2d", "filters": 4, "size": 2, "stride": 2}],
            "shortcut": "projection",
            "activation": None,
        },
        {
            "layers": [
                {"type": "conv2d", "filters": 3, "size": 3, "pad": 1},
                {"type": "relu"},
                {"type": "conv2d", "filters": 3, "size": 3, "pad": 1},
            ],
            "stochastic_depth": 0.5,
        },
    )

    def __init__(self, config=None, registry=None, field: str = "", **params):
        super().__init__(config, registry, field, **params)
        self.body = Sequential(
            {"layers": self.config.layers},
            registry=registry,
            field=f"{field}.layers" if field else "layers",
        )
        self.shortcut: Projection | None = None
        self._children_flags()
        self.drop = float(self.config.stochastic_depth)
        if self.drop > 0:
            self.stochastic = True
            self.mode_dependent = True

    def _branch_output_is_free(self) -> bool:
        """True when the branch's last layer returns a new array it keeps nothing of (its class
        says ``fresh_output = True``): the sum is then written into that array."""
        last = self.body.children[-1]
        return not getattr(last, "container", False) and bool(getattr(last, "fresh_output", False))

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        yield from self.body.named_children()
        if self.shortcut is not None:
            yield "shortcut", self.shortcut

    def _projection_for(self, in_shape: Shape, out_shape: Shape) -> Projection | None:
        """The shortcut mapping in_shape to out_shape (None for identity); ConfigError if impossible."""
        if self.config.shortcut == "identity":
            if tuple(in_shape) != tuple(out_shape):
                raise ConfigError(
                    "shortcut",
                    f"residual: an identity shortcut needs the branch to keep the shape, but it maps "
                    f'{shape_to_public(in_shape)} to {shape_to_public(out_shape)}; use "shortcut": "projection"',
                )
            return None
        if len(in_shape) != len(out_shape):
            raise ConfigError(
                "shortcut",
                f"residual: a projection maps images to images or vectors to vectors, not "
                f"{shape_to_public(in_shape)} to {shape_to_public(out_shape)}",
            )
        if len(in_shape) == 1:
            return Projection(filters=out_shape[0])
        strides = []
        for axis, n_in, n_out in (
            ("height", in_shape[0], out_shape[0]),
            ("width", in_shape[1], out_shape[1]),
        ):
            if n_out > n_in or n_in % n_out:
                raise ConfigError(
                    "shortcut",
                    f"residual: projection stride = input {axis} / branch output {axis} = {n_in}/{n_out} = "
                    f"{n_in / n_out:.4g} is not a whole number; make the branch divide the {axis} exactly",
                )
            strides.append(n_in // n_out)
        return Projection(filters=out_shape[2], stride=tuple(strides))

    def infer(self, in_shape: Shape) -> ShapeInfo:
        try:
            body = self.body.infer(in_shape)
        except ConfigError as exc:
            raise exc.at("layers") from None
        proj = self._projection_for(in_shape, body.out_shape)
        size = math.prod(int(s) for s in body.out_shape)  # Python ints: no int64 wrap-around
        params, flops = body.params, body.flops + size * (2 if self.config.activation else 1)
        if proj is not None:
            p = proj.infer(in_shape)
            params, flops = params + p.params, flops + p.flops
        return ShapeInfo(tuple(body.out_shape), params, flops)

    def infer_detail(self, in_shape: Shape) -> dict:
        """What the model table shows inside the block: the shortcut kind and the branch's rows."""
        rows = self.body.infer_rows(in_shape)
        return {"shortcut": self.config.shortcut, "layers": rows}

    def build(
        self, in_shape: Shape, rng: np.random.Generator, dtype=np.float32, initializer=None
    ) -> None:
        in_shape = tuple(int(s) for s in in_shape)
        self.in_shape = in_shape
        try:
            self.body.build(in_shape, rng, dtype, initializer)
            out_shape = self.body.infer(in_shape).out_shape
        except ConfigError as exc:
            raise exc.at("layers") from None
        self.shortcut = self._projection_for(in_shape, out_shape)
        if self.shortcut is not None:
            self.shortcut.build(in_shape, rng, dtype, initializer)

    def forward(
        self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """x: (N, H, W, C) or (N, D) -> relu(shortcut(x) + F(x)), shaped like F(x)."""
        skipped, scale = False, 1.0
        if self.drop > 0:
            if training:
                if rng is None:
                    raise ValueError(
                        "residual: stochastic depth in training needs the rng passed to forward"
                    )
                skipped = bool(rng.random() < self.drop)
            else:
                scale = 1.0 - self.drop
        shortcut = x if self.shortcut is None else self.shortcut.forward(x, training, rng)
        branch = None if skipped else self.body.forward(x, training, rng)
        out, mask = relu_add_forward(
            shortcut, branch, scale, self.config.activation, self._branch_output_is_free()
        )
        self.cache = (skipped, scale, mask)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout: like the output -> gradient of x (None when need_input_grad is False)."""
        skipped, scale, mask = self.cache
        dsum = relu_add_backward(dout, mask)
        self.body.need_input_grad = self.need_input_grad
        if self.shortcut is not None:
            self.shortcut.need_input_grad = self.need_input_grad
            dx = self.shortcut.backward(dsum)
        else:
            dx = dsum if self.need_input_grad else None
        if skipped:
            # A skipped branch still owes the optimizer a gradient for each of its arrays.
            body_grads = self.body.grads
            for key, arr in list(self.body.params.items()):
                body_grads[key] = xp.zeros_like(arr)
            return dx
        dbranch = self.body.backward(dsum if scale == 1.0 else dsum * scale)
        if dx is None:
            return None
        if dx is dout:  # the caller's array (identity shortcut, no activation): never written
            return dx + dbranch
        # dx is this block's own array (the masked gradient, or the projection's dx): the
        # branch's backward is done with it, so the branch gradient is added in place.
        dx += dbranch
        return dx
