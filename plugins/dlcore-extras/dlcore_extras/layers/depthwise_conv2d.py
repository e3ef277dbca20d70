"""Depthwise 2-D convolution: each input channel convolved with its own filters.

Layouts (NHWC inside the model, as every dlcore layer):

- input x: (N, H, W, C); output: (N, H', W', C * M) with M the ``multiplier`` and
  H' = (H - F + 2P)/S + 1.  Output channel c * M + j comes from input channel c
  (PyTorch's order for ``conv2d(..., groups=C)``).
- weights ``W``: (F, F, C, M).  PyTorch's weight is (C * M, 1, F, F): ours is
  ``torch_w.reshape(C, M, F, F).permute(2, 3, 0, 1)``.
- bias ``b``: (C * M,).

No channel mixing, so no GEMM: one multiply-add over the whole batch per kernel
offset (F * F vectorized steps; no loop over samples or pixels).  Padding is zeros.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.initializers import draw_weights
from dlcore.layers.windows import offset_slice, output_side, pad_amount, pad_image, require_image


def depthwise_conv2d_forward(x, w, b, stride, pad):
    """Convolve every channel of x with its own M filters.

    Inputs:
    - x: (N, H, W, C); w: (F, F, C, M); b: (C * M,); stride: S; pad: P (zeros).

    Returns:
    - out: (N, H', W', C * M).
    - cache: (xpad, w, stride, pad, x_shape).
    """
    n, h, wd, c = x.shape
    f, _, _, m = w.shape
    out_h = output_side("depthwise_conv2d", "height", h, f, stride, pad)
    out_w = output_side("depthwise_conv2d", "width", wd, f, stride, pad)
    xpad = pad_image(x, pad)
    out = xp.zeros((n, out_h, out_w, c, m), dtype=x.dtype)
    for di in range(f):
        rows = offset_slice(di, stride, out_h)
        for dj in range(f):
            out += xpad[:, rows, offset_slice(dj, stride, out_w), :, None] * w[di, dj]
    out = out.reshape(n, out_h, out_w, c * m)
    out += b
    return out, (xpad, w, stride, pad, x.shape)


def depthwise_conv2d_backward(dout, cache):
    """Backward pass of :func:`depthwise_conv2d_forward`.

    Inputs:
    - dout: (N, H', W', C * M) upstream gradient; cache: from the forward pass.

    Returns:
    - dx: (N, H, W, C), dw: (F, F, C, M), db: (C * M,).
    """
    xpad, w, stride, pad, x_shape = cache
    f, _, c, m = w.shape
    n, out_h, out_w, _ = dout.shape
    rows_total = n * out_h * out_w
    ones = xp.ones(rows_total, dtype=dout.dtype)
    db = ones @ dout.reshape(rows_total, c * m)
    d5 = dout.reshape(n, out_h, out_w, c, m)
    dw = xp.zeros_like(w)
    dxpad = xp.zeros(xpad.shape, dtype=dout.dtype)
    for di in range(f):
        rows = offset_slice(di, stride, out_h)
        for dj in range(f):
            cols = offset_slice(dj, stride, out_w)
            window = xpad[:, rows, cols, :, None]
            dw[di, dj] = (ones @ (window * d5).reshape(rows_total, c * m)).reshape(c, m)
            dxpad[:, rows, cols] += (d5 * w[di, dj]).sum(axis=-1)
    _, h, wd, _ = x_shape
    dx = dxpad[:, pad : pad + h, pad : pad + wd] if pad else dxpad
    return dx, dw, db


NonNegativeInt = Annotated[int, Field(ge=0)]


class DepthwiseConv2DConfig(Config):
    size: int = Field(3, ge=1, description="kernel side F: each filter is F x F over one channel")
    stride: int = Field(1, ge=1, description="step S between windows, in pixels")
    pad: NonNegativeInt | Literal["same"] = Field(
        0, description='zero padding P per side, an int >= 0, or "same" (P = (F - 1)/2; stride 1 and odd size only)'
    )
    multiplier: int = Field(1, ge=1, description="filters per input channel M: the output has C * M channels")

    @field_validator("pad", mode="wrap")
    @classmethod
    def _one_message_for_pad(cls, value, handler):
        # One error at "pad" instead of one per member of the union ("pad.constrained-int", ...).
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "pad", 'pad must be an integer >= 0 or "same", got {value}', {"value": repr(value)}
            ) from None


class DepthwiseConv2D(Layer):
    """Per-channel 2-D convolution (groups = C), M filters per channel, zero padding."""

    name: ClassVar[str] = "depthwise_conv2d"
    summary: ClassVar[str] = "depthwise 2-D convolution: each channel with its own M filters of F x F, stride S, zero padding P"
    Config: ClassVar[type[Config]] = DepthwiseConv2DConfig
    regularized: ClassVar[tuple[str, ...]] = ("W",)
    examples: ClassVar[tuple[dict, ...]] = (
        {},
        {"size": 3, "pad": "same", "multiplier": 2},
        {"size": 3, "stride": 2, "pad": 1},
    )
    example_shapes: ClassVar[tuple] = ((5, 5, 3), (3, 3, 2))

    @property
    def pad_amount(self):
        """P as an int ("same" is (F - 1)/2)."""
        return pad_amount(self.name, self.config.size, self.config.stride, self.config.pad)

    def infer(self, in_shape):
        h, w, c = require_image(self.name, in_shape)
        f, s, m = self.config.size, self.config.stride, self.config.multiplier
        p = self.pad_amount
        out_h = output_side(self.name, "height", h, f, s, p, window="kernel")
        out_w = output_side(self.name, "width", w, f, s, p, window="kernel")
        k = c * m
        return ShapeInfo(out_shape=(out_h, out_w, k), params=f * f * k + k, flops=(2 * f * f + 1) * k * out_h * out_w)

    def build(self, in_shape, rng, dtype=xp.float32, initializer=None):
        """W: (F, F, C, M) from the initializer (fan_in F*F, fan_out F*F*M, as PyTorch); b: zeros."""
        super().build(in_shape, rng, dtype, initializer)
        f, m, c = self.config.size, self.config.multiplier, int(in_shape[-1])
        w = draw_weights(initializer, (f, f, c, m), f * f, f * f * m, rng, dtype)
        self.params = {"W": w, "b": xp.zeros(c * m, dtype=dtype)}
        self.grads = {k: xp.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False, rng=None):
        out, self.cache = depthwise_conv2d_forward(x, self.params["W"], self.params["b"], self.config.stride, self.pad_amount)
        return out

    def backward(self, dout):
        dx, dw, db = depthwise_conv2d_backward(dout, self.cache)
        self.grads = {"W": dw, "b": db}
        return dx
