"""Pooling in the internal NHWC layout: max, average and global average.

Windows are m x m with stride s (default s = m): output side (H - m)/s + 1, which
must be a whole number; pooling never changes the depth C and has no padding.

Two paths:

- non-overlapping windows (s == m, so m divides H and W): a reshape
  ``x.reshape(N, H/m, m, W/m, m, C)`` reduced over axes 2 and 4, no copy of windows;
- any other stride (overlapping windows, or gaps when s > m): one loop over the m*m
  window offsets, each a strided view of x (loops over offsets, never over pixels).

On more than one thread (:mod:`dlcore.parallel`) the non-overlapping path, forward and
backward, is split over the batch: NumPy releases the GIL in these ufunc passes.

Max-pool ties: when several entries of a window share the maximum, EVERY tied entry
receives the window's gradient (PyTorch gives it to the first one only).  Ties have
probability zero for continuous inputs; gradient and parity tests use tie-free inputs.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.layers.windows import offset_slice, output_side, require_image
from dlcore.parallel import parallel_over_batch


def _out_sides(x_shape, size, stride):
    _, h, w, _ = x_shape
    return (h - size) // stride + 1, (w - size) // stride + 1


def _reduce_blocks(blocks, ufunc, out):
    """Combine the m x m entries of each block with a binary ufunc (maximum or add), into out.

    Inputs:
    - blocks: (N, H', m, W', m, C), a reshaped view of x.
    - ufunc: xp.maximum or xp.add.
    - out: (N, H', W', C) array the result is written to.

    Returns:
    - out.

    Pairwise ufunc calls over the window axes were about 6x faster here than
    ``blocks.max(axis=(2, 4))``, a reduction over two non-contiguous axes.
    """
    size = blocks.shape[2]
    rows = blocks[:, :, 0] if size == 1 else ufunc(blocks[:, :, 0], blocks[:, :, 1])
    for di in range(2, size):
        ufunc(rows, blocks[:, :, di], out=rows)
    # rows: (N, H', W', m, C)
    if size == 1:
        out[...] = rows[:, :, :, 0]
        return out
    ufunc(rows[:, :, :, 0], rows[:, :, :, 1], out=out)
    for dj in range(2, size):
        ufunc(out, rows[:, :, :, dj], out=out)
    return out


def maxpool_forward(x, size, stride):
    """Maximum over each m x m window.

    Inputs:
    - x: (N, H, W, C).
    - size: m; stride: s ((H - m)/s + 1 and (W - m)/s + 1 whole numbers).

    Returns:
    - out: (N, H', W', C).
    - cache: ("reshape", mask, x_shape) for s == m, with mask (N, H', m, W', m, C) in x's
      dtype, 1 where an entry is its window's maximum; else ("offsets", x, out, size, stride).
    """
    n, _, _, c = x.shape
    out_h, out_w = _out_sides(x.shape, size, stride)
    if stride == size:
        blocks = x.reshape(n, out_h, size, out_w, size, c)
        out = xp.empty((n, out_h, out_w, c), dtype=x.dtype)
        mask = xp.empty(blocks.shape, dtype=x.dtype)

        def pool_rows(i, j):
            _reduce_blocks(blocks[i:j], xp.maximum, out[i:j])
            # Written into the float buffer the backward pass multiplies by (a bool mask costs a cast there).
            mask[i:j] = blocks[i:j] == out[i:j, :, None, :, None, :]

        parallel_over_batch(pool_rows, n, bytes_per_item=2 * x[0].nbytes)
        return out, ("reshape", mask, x.shape)
    out = None
    for di in range(size):
        rows = offset_slice(di, stride, out_h)
        for dj in range(size):
            view = x[:, rows, offset_slice(dj, stride, out_w)]
            if out is None:
                out = view.copy()
            else:
                xp.maximum(out, view, out=out)
    return out, ("offsets", x, out, size, stride)


def maxpool_backward(dout, cache):
    """Backward pass of :func:`maxpool_forward`: dout goes to each window's maximum.

    Inputs:
    - dout: (N, H', W', C).
    - cache: from the forward pass.

    Returns:
    - dx: (N, H, W, C).
    """
    if cache[0] == "reshape":
        _, mask, x_shape = cache
        dx = xp.empty(mask.shape, dtype=xp.result_type(mask, dout))
        n = len(dx)

        def unpool_rows(i, j):
            # Multiplying by the saved mask is several times faster than np.where.
            xp.multiply(mask[i:j], dout[i:j, :, None, :, None, :], out=dx[i:j])

        parallel_over_batch(unpool_rows, n, bytes_per_item=2 * mask[0].nbytes)
        return dx.reshape(x_shape)
    _, x, out, size, stride = cache
    _, out_h, out_w, _ = out.shape
    dx = xp.zeros_like(x, dtype=dout.dtype)
    for di in range(size):
        rows = offset_slice(di, stride, out_h)
        for dj in range(size):
            cols = offset_slice(dj, stride, out_w)
            dx[:, rows, cols] += (x[:, rows, cols] == out) * dout
    return dx


def avgpool_forward(x, size, stride):
    """Mean over each m x m window.

    Inputs:
    - x: (N, H, W, C).
    - size: m; stride: s.

    Returns:
    - out: (N, H', W', C).
    - cache: (x_shape, size, stride).
    """
    n, _, _, c = x.shape
    out_h, out_w = _out_sides(x.shape, size, stride)
    if stride == size:
        blocks = x.reshape(n, out_h, size, out_w, size, c)
        out = xp.empty((n, out_h, out_w, c), dtype=x.dtype)

        def pool_rows(i, j):
            _reduce_blocks(blocks[i:j], xp.add, out[i:j])
            out[i:j] *= 1.0 / (size * size)

        parallel_over_batch(pool_rows, n, bytes_per_item=x[0].nbytes)
        return out, (x.shape, size, stride)
    out = xp.zeros((n, out_h, out_w, c), dtype=x.dtype)
    for di in range(size):
        rows = offset_slice(di, stride, out_h)
        for dj in range(size):
            out += x[:, rows, offset_slice(dj, stride, out_w)]
    out *= 1.0 / (size * size)
    return out, (x.shape, size, stride)


def avgpool_backward(dout, cache):
    """Backward pass of :func:`avgpool_forward`: each window entry gets dout / m^2.

    Inputs:
    - dout: (N, H', W', C).
    - cache: from the forward pass.

    Returns:
    - dx: (N, H, W, C).
    """
    x_shape, size, stride = cache
    n, out_h, out_w, c = dout.shape
    share = dout * (1.0 / (size * size))
    if stride == size:
        dx = xp.empty(x_shape, dtype=share.dtype)
        blocks = dx.reshape(n, out_h, size, out_w, size, c)

        def unpool_rows(i, j):
            blocks[i:j] = share[i:j, :, None, :, None, :]

        parallel_over_batch(unpool_rows, n, bytes_per_item=dx[0].nbytes)
        return dx
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    for di in range(size):
        rows = offset_slice(di, stride, out_h)
        for dj in range(size):
            dx[:, rows, offset_slice(dj, stride, out_w)] += share
    return dx


def global_avgpool_forward(x):
    """Mean over all positions of each channel.

    Inputs:
    - x: (N, H, W, C).

    Returns:
    - out: (N, C).
    - cache: x_shape.
    """
    n, h, w, c = x.shape
    return x.reshape(n, h * w, c).mean(axis=1), x.shape


def global_avgpool_backward(dout, cache):
    """Backward pass of :func:`global_avgpool_forward`.

    Inputs:
    - dout: (N, C).
    - cache: x_shape (N, H, W, C).

    Returns:
    - dx: (N, H, W, C), dout / (H*W) at every position.
    """
    n, h, w, c = cache
    dx = xp.empty(cache, dtype=dout.dtype)
    dx.reshape(n, h * w, c)[...] = (dout * (1.0 / (h * w)))[:, None, :]
    return dx


PositiveInt = Annotated[int, Field(ge=1)]


class PoolConfig(Config):
    size: int = Field(..., ge=1, description="Window side m: windows are m x m.")
    stride: PositiveInt | None = Field(
        None, description="Step s between windows; default (null) is size, non-overlapping windows."
    )


class _Pool(Layer):
    """Shared shape rules of max and average pooling."""

    Config: ClassVar[type[Config]] = PoolConfig
    examples: ClassVar[tuple[dict, ...]] = ({"size": 2}, {"size": 3, "stride": 1}, {"size": 2, "stride": 1})
    example_shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((4, 4, 2), (6, 6, 1))

    @property
    def stride(self) -> int:
        """s, defaulting to the window size."""
        return self.config.stride or self.config.size

    def infer(self, in_shape):
        """(H, W, C) -> (H', W', C); no params; flops m*m per output value (compares or adds)."""
        h, w, c = require_image(self.name, in_shape)
        m, s = self.config.size, self.stride
        out_h = output_side(self.name, "height", h, m, s, None, hint="change size or stride")
        out_w = output_side(self.name, "width", w, m, s, None, hint="change size or stride")
        return ShapeInfo(out_shape=(out_h, out_w, c), params=0, flops=m * m * out_h * out_w * c)


class MaxPool(_Pool):
    """Max pooling over m x m windows with stride s (ties: every tied maximum gets the gradient)."""

    name: ClassVar[str] = "maxpool"
    ties: ClassVar[bool] = True  # equal entries of a window: the maximum switches between them
    summary: ClassVar[str] = "Max pooling over m x m windows with stride s; keeps the depth."

    def forward(self, x, training=False, rng=None):
        """x: (N, H, W, C) -> (N, H', W', C)."""
        out, self.cache = maxpool_forward(x, self.config.size, self.stride)
        return out

    def backward(self, dout):
        """dout: (N, H', W', C) -> dx: (N, H, W, C)."""
        return maxpool_backward(dout, self.cache)


class AvgPool(_Pool):
    """Average pooling over m x m windows with stride s."""

    name: ClassVar[str] = "avgpool"
    summary: ClassVar[str] = "Average pooling over m x m windows with stride s; keeps the depth."

    def forward(self, x, training=False, rng=None):
        """x: (N, H, W, C) -> (N, H', W', C)."""
        out, self.cache = avgpool_forward(x, self.config.size, self.stride)
        return out

    def backward(self, dout):
        """dout: (N, H', W', C) -> dx: (N, H, W, C)."""
        return avgpool_backward(dout, self.cache)


class GlobalAvgPool(Layer):
    """Global average pooling: the mean of each channel over all positions, (N, H, W, C) -> (N, C)."""

    name: ClassVar[str] = "global_avgpool"
    summary: ClassVar[str] = "Global average pooling: (N, H, W, C) -> (N, C), the mean of each channel."
    examples: ClassVar[tuple[dict, ...]] = ({},)
    example_shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((4, 4, 2), (3, 5, 1))

    def infer(self, in_shape):
        """(H, W, C) -> (C,); no params; flops H*W*C."""
        h, w, c = require_image(self.name, in_shape)
        return ShapeInfo(out_shape=(c,), params=0, flops=h * w * c)

    def forward(self, x, training=False, rng=None):
        """x: (N, H, W, C) -> (N, C)."""
        out, self.cache = global_avgpool_forward(x)
        return out

    def backward(self, dout):
        """dout: (N, C) -> dx: (N, H, W, C)."""
        return global_avgpool_backward(dout, self.cache)
