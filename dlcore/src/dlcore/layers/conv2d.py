"""2-D convolution as im2col + one GEMM, in the internal NHWC layout.

Layouts:

- input x: (N, H, W, C); output: (N, H', W', K) with H' = (H - F + 2P)/S + 1.
- weights ``W``: (F, F, C, K), i.e. (kernel row, kernel column, input channel,
  filter).  PyTorch's ``Conv2d.weight`` is (K, C, F, F): ours is
  ``torch_w.permute(2, 3, 1, 0)``.  Reshaped to (F*F*C, K) it is the GEMM's
  right-hand side, with rows in the same order as the columns of im2col.
- bias ``b``: (K,).

Forward pads x into a scratch buffer (zeros, or edge-replicated), copies every
window once through one strided view into a column buffer (N*H'*W', F*F*C + 1),
whose last column of ones carries the bias, and does one GEMM, block of samples by
block (:data:`COLUMN_BLOCK_BYTES`), so each block's columns are multiplied while in
cache.  Backward rebuilds the same columns from x (kept in the cache) and gets dW and
db by one GEMM against them.  dx of a stride-1, zero-padded convolution with 8 or more
input channels is itself a convolution (of dout, padded by F-1-P, with the kernel
turned 180 degrees and its channels swapped), done by the forward's code; otherwise
the F*F kernel offsets each get a GEMM whose product is added in place into dx (about
4x faster than a col2im scatter at 16 channels), each clipped to the reads inside the
image; with edge padding the offsets add into a padded gradient buffer whose border is
then folded back onto the edge pixels and cropped.

On more than one thread (:mod:`dlcore.parallel`, as many as the BLAS is set to use) the
whole layer is split over the batch: each piece builds and multiplies its own samples'
columns on its own core, with the BLAS held at one thread, and the pieces' dW and db are
added in piece order.

Scratch is the caller's: the padded input, the columns and the backward buffers come
from the active :class:`dlcore.workspace.Workspace` (one per ``Model.scores`` call, the
thread's own otherwise), never from the layer, so one layer serves concurrent callers.
They are the workspace's *shared* buffers (:meth:`Workspace.shared`): every conv2d of a
model takes turns in one column buffer (per piece) the size of the largest layer's block, and nothing of
it outlives a call, so the cache is a pure value (x and the weights) and the output a
new array no one else holds (``fresh_output``: a residual block writes its sum into it).
Keeping each layer's columns for its backward instead held 187 MB in resnet_tiny, more
than PyTorch's whole step; rebuilding them costs one window copy per layer in backward.

Initialization: fan_in = F*F*C (inputs seen by one output), fan_out = F*F*K (as PyTorch).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dlcore.backend import xp
from dlcore.component import Layer, ShapeInfo
from dlcore.config import Config
from dlcore.initializers import draw_weights
from dlcore.layers.windows import (
    fold_edge_grad,
    offset_slice,
    output_side,
    pad_amount,
    pad_into,
    require_image,
    window_view,
)
from dlcore.parallel import parallel_over_batch
from dlcore.workspace import Workspace


def _fresh(key, shape, dtype, fill=0):
    """Scratch for callers that keep none: a new array every call (the cache is then a pure value)."""
    return xp.full(shape, fill, dtype=dtype) if fill is not None else xp.empty(shape, dtype=dtype)


def _window_columns(cols, n, out_h, out_w, f, c):
    """The first F*F*C columns of cols as a writable (N, H', W', F, F, C) view (never a copy)."""
    row, item = cols.strides
    return xp.lib.stride_tricks.as_strided(
        cols,
        shape=(n, out_h, out_w, f, f, c),
        strides=(out_h * out_w * row, out_w * row, row, f * c * item, c * item, item),
    )


def _columns(x, f, stride, pad, padding_mode, scratch):
    """The GEMM's left-hand side for x, in the shared scratch (rebuilt by forward and by backward).

    Returns:
    - (N*H'*W', F*F*C + 1): every window as a row, and a last column of ones (the bias input);
      or (N*H*W, C), the (padded) pixels themselves, for 1x1 stride-1 kernels.
    """
    n, h, wd, c = x.shape
    out_h = (h + 2 * pad - f) // stride + 1
    out_w = (wd + 2 * pad - f) // stride + 1
    # Shared with every other layer: its border is rewritten along with its centre.
    xpad = scratch("conv2d.xpad", (n, h + 2 * pad, wd + 2 * pad, c), x.dtype, None) if pad else x
    if pad:
        pad_into(xpad, x, pad, padding_mode, True)
    if f == 1 and stride == 1:
        # A 1x1 convolution is an affine map of every pixel: no window copy needed.
        return xp.ascontiguousarray(xpad).reshape(-1, c)
    cols = scratch("conv2d.cols", (n * out_h * out_w, f * f * c + 1), x.dtype, None)
    _window_columns(cols, n, out_h, out_w, f, c)[...] = window_view(xpad, f, stride, out_h, out_w)
    cols[:, -1] = 1  # another layer's columns may be where the ones were
    return cols


#: Input channels from which dx of a stride-1 zero-padded convolution is computed as a
#: convolution of dout (below, the output of that GEMM is too narrow: 1.6x slower at 3).
DX_AS_CONVOLUTION_MIN_CHANNELS = 8

#: Bytes of columns built and multiplied at a time: a block of samples whose columns stay
#: in cache between the window copy and the GEMM that reads them, and the size of the one
#: column buffer every conv2d of a workspace shares.
COLUMN_BLOCK_BYTES = 2 << 20


def _sample_blocks(n, rows, width, itemsize):
    """[(start, stop)] of the samples whose columns are built and multiplied together: as many
    blocks as :data:`COLUMN_BLOCK_BYTES` divides the columns into, of equal sizes (so each
    under twice that; a sample larger than it is a block alone).

    At every thread count: on two threads, blocks of 8x the size (fewer hand-offs between
    threads) held 18 MB more at the peak of ``cnn``, which then missed 1.5x PyTorch's.
    """
    count = -(-n * rows * width * itemsize // COLUMN_BLOCK_BYTES)  # blocks of at most the target, ...
    step = max(1, -(-n // max(1, count)))  # ... of equal sizes
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def conv2d_forward(x, w, b, stride=1, pad=0, padding_mode="zeros", scratch=None):
    """Convolve x with K filters (cross-correlation, as every DL library).

    Inputs:
    - x: (N, H, W, C) input; kept (not copied) in the cache, so it must not be written
      before backward (no dlcore layer writes its input).
    - w: (F, F, C, K) filters.
    - b: (K,) biases.
    - stride: S; pad: P per side (int); padding_mode: "zeros" or "edge".
    - scratch: ``scratch(key, shape, dtype, fill) -> array``, where the padded input and the
      column buffer come from (``Workspace.shared``: one buffer for every layer, one per piece
      of a split; None: fresh arrays).  Nothing of it is kept past the call.

    Returns:
    - out: (N, H', W', K), H' = (H - F + 2P)/S + 1 (shapes are assumed valid: see
      :meth:`Conv2D.infer`), a new array.
    - cache: (x, w, stride, pad, padding_mode, scratch).
    """
    scratch = scratch or _fresh
    n, h, wd, c = x.shape
    f, _, _, k = w.shape
    out_h = (h + 2 * pad - f) // stride + 1
    out_w = (wd + 2 * pad - f) // stride + 1
    rows = out_h * out_w
    out = xp.empty((n * rows, k), dtype=xp.result_type(x, w))
    cache = (x, w, stride, pad, padding_mode, scratch)
    if f == 1 and stride == 1:
        # A 1x1 convolution is an affine map of every pixel: no window copy needed.
        w2 = w.reshape(c, k)

        def pixels(i, j):
            xp.matmul(_columns(x[i:j], f, stride, pad, padding_mode, scratch), w2, out=out[i * rows : j * rows])
            out[i * rows : j * rows] += b

        parallel_over_batch(pixels, n, flops_per_item=2 * rows * c * k)
        return out.reshape(n, out_h, out_w, k), cache
    # The bias rides in the GEMM as one more row of weights against the ones column:
    # a separate ``out += b`` pass over the output cost more than the GEMM at 3 channels.
    wb = xp.concatenate((w.reshape(f * f * c, k), b.reshape(1, k)))
    width = f * f * c + 1

    def convolve(i, j):
        _convolve_into(out[i * rows : j * rows], x[i:j], wb, f, stride, pad, padding_mode, scratch)

    parallel_over_batch(convolve, n, flops_per_item=2 * rows * width * k)
    return out.reshape(n, out_h, out_w, k), cache


def _convolve_into(out2, x, wb, f, stride, pad, padding_mode, scratch):
    """out2: (n*H'*W', K) = the columns of x's samples @ wb, block of samples by block, each
    block's columns multiplied while they are in cache (the samples of one core)."""
    n, h, wd, _ = x.shape
    rows = ((h + 2 * pad - f) // stride + 1) * ((wd + 2 * pad - f) // stride + 1)
    for b0, b1 in _sample_blocks(n, rows, wb.shape[0], x.itemsize):
        cols = _columns(x[b0:b1], f, stride, pad, padding_mode, scratch)
        xp.matmul(cols, wb, out=out2[b0 * rows : b1 * rows])


def _inside(offset, stride, pad, in_side, out_side):
    """Outputs whose kernel offset ``offset`` reads a pixel inside the image, not in the zero padding.

    Output o reads input o*S + offset - P.  Returns (output slice, input slice) of
    equal length, or None when every read of that offset falls in the padding.
    """
    first = max(0, -((offset - pad) // stride))  # ceil((P - offset) / S), at least 0
    last = min(out_side - 1, (in_side - 1 + pad - offset) // stride)
    if last < first:
        return None
    start = first * stride + offset - pad
    return slice(first, last + 1), slice(start, start + stride * (last - first) + 1, stride)


def conv2d_backward(dout, cache, need_input_grad=True):
    """Backward pass of :func:`conv2d_forward`.

    Inputs:
    - dout: (N, H', W', K) upstream gradient.
    - cache: from the forward pass.
    - need_input_grad: False skips dx (the first layer of a model needs none).

    Returns:
    - dx: (N, H, W, C), or None when need_input_grad is False.
    - dw: (F, F, C, K).
    - db: (K,).

    Split over the batch like the forward pass: each piece gets dW and db of its samples
    (summed afterwards, in piece order) and writes dx of its samples.
    """
    x, w, stride, pad, padding_mode, scratch = cache
    f, _, c, k = w.shape
    n, out_h, out_w, _ = dout.shape
    rows = out_h * out_w
    d2 = dout.reshape(-1, k)
    pointwise = f == 1 and stride == 1
    # 1x1 kernels: dW alone (db by a GEMV below); otherwise the ones column gives db along with dW.
    width = c if pointwise else f * f * c + 1
    dtype = xp.result_type(x, d2)
    partial_dwb: dict[int, object] = {}
    dx = xp.empty(x.shape, dtype=d2.dtype) if need_input_grad else None
    # dx of a stride-1, zero-padded convolution is itself one: dout, padded by F-1-P, correlated
    # with the kernel turned 180 degrees and its channels swapped.  One GEMM as wide as the
    # forward's instead of F*F narrow ones (K inner) and their adds: 0.7x the time at 16 and at
    # 32 channels (AMD EPYC); at 3 input channels the narrow output made it 1.6x.
    as_convolution = (dx is not None and stride == 1 and f > 1 and padding_mode == "zeros" and pad <= f - 1
                      and c >= DX_AS_CONVOLUTION_MIN_CHANNELS)
    if as_convolution:
        flipped = w[::-1, ::-1].transpose(0, 1, 3, 2).reshape(f * f * k, c)
        flipped = xp.concatenate((flipped, xp.zeros((1, c), dtype=w.dtype)))  # against the ones column

    def gradients(i, j):
        # The columns are rebuilt from x rather than kept from forward: one copy more per step,
        # but the step holds one layer's columns instead of every layer's (docs/performance-convolution.md).
        dwb = xp.zeros((width, k), dtype=dtype)
        for b0, b1 in _sample_blocks(j - i, rows, width, x.itemsize):
            cols = _columns(x[i + b0 : i + b1], f, stride, pad, padding_mode, scratch)
            dwb += cols.T @ d2[(i + b0) * rows : (i + b1) * rows]
        partial_dwb[i] = dwb
        if as_convolution:
            _convolve_into(dx[i:j].reshape(-1, c), dout[i:j], flipped, f, 1, f - 1 - pad, "zeros", scratch)
        elif dx is not None:
            _dx_into(dx[i:j], d2[i * rows : j * rows], w, out_h, out_w, stride, pad, padding_mode, scratch)

    parallel_over_batch(gradients, n, flops_per_item=2 * rows * width * k * (2 if dx is not None else 1))
    dwb = xp.zeros((width, k), dtype=dtype)
    for start in sorted(partial_dwb):
        dwb += partial_dwb[start]
    if pointwise:
        # A GEMV sums over positions faster than d2.sum(0), and more accurately in float32.
        dw, db = dwb.reshape(w.shape), xp.ones(d2.shape[0], dtype=d2.dtype) @ d2
    else:
        dw, db = dwb[:-1].reshape(w.shape), dwb[-1]
    return dx, dw, db


def _offset_reads(f, stride, pad, h, wd, out_h, out_w):
    """(di, dj, output rows, input rows, output columns, input columns) of each kernel offset
    that reads inside the image (zero padding has no gradient)."""
    reads = []
    for di in range(f):
        row_ranges = _inside(di, stride, pad, h, out_h)
        for dj in range(f):
            col_ranges = _inside(dj, stride, pad, wd, out_w)
            if row_ranges is not None and col_ranges is not None:
                reads.append((di, dj, *row_ranges, *col_ranges))
    return reads


def _dx_into(dx, d2, w, out_h, out_w, stride, pad, padding_mode, scratch):
    """dx: (n, H, W, C) of some samples, by one GEMM per kernel offset, each added in place at once.

    Each offset's product, (n*H'*W', C), is still in cache when it is added (measured 10%
    faster than one GEMM for all offsets and the adds after it).
    """
    n, h, wd, c = dx.shape
    f, _, _, k = w.shape
    if f == 1 and stride == 1 and not pad:
        xp.matmul(d2, w.reshape(c, k).T, out=dx.reshape(-1, c))
        return
    # The columns' buffer: dW is done with them.
    piece = scratch("conv2d.cols", (d2.shape[0], c), d2.dtype, None)
    piece4 = piece.reshape(n, out_h, out_w, c)
    if padding_mode == "edge" and pad:
        # Accumulate into the padded gradient, then fold the border back onto the edge pixels.
        dxpad = scratch("conv2d.dxpad", (n, h + 2 * pad, wd + 2 * pad, c), d2.dtype, None)
        dxpad.fill(0)
        for di in range(f):
            rows = offset_slice(di, stride, out_h)
            for dj in range(f):
                xp.matmul(d2, w[di, dj].T, out=piece)
                dxpad[:, rows, offset_slice(dj, stride, out_w)] += piece4
        fold_edge_grad(dxpad, pad, h, wd)
        dx[...] = dxpad[:, pad : pad + h, pad : pad + wd]
        return
    # Straight into dx, each offset clipped to the outputs that read inside the image
    # (measured 10-25% faster than a padded buffer, filled and cropped).
    dx.fill(0)
    for di, dj, out_rows, in_rows, out_cols, in_cols in _offset_reads(f, stride, pad, h, wd, out_h, out_w):
        xp.matmul(d2, w[di, dj].T, out=piece)
        dx[:, in_rows, in_cols] += piece4[:, out_rows, out_cols]


NonNegativeInt = Annotated[int, Field(ge=0)]


class Conv2DConfig(Config):
    filters: int = Field(..., ge=1, description="Number of filters K (output channels).")
    size: int = Field(..., ge=1, description="Kernel side F: each filter is F x F x C.")
    stride: int = Field(1, ge=1, description="Step S between windows, in pixels.")
    pad: NonNegativeInt | Literal["same"] = Field(
        0,
        description='Padding P per side, an int >= 0, or "same" (P = (F - 1)/2; stride 1 and odd size only).',
    )
    padding_mode: Literal["zeros", "edge"] = Field(
        "zeros", description='"zeros", or "edge" to replicate the nearest edge pixel.'
    )

    @field_validator("pad", mode="wrap")
    @classmethod
    def _pad_rule(cls, value, handler, info: ValidationInfo):
        try:
            pad = handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "pad", 'pad must be an integer >= 0 or "same", got {value}', {"value": repr(value)}
            ) from None
        if pad == "same":
            stride, size = info.data.get("stride"), info.data.get("size")
            if stride is not None and stride != 1:
                raise PydanticCustomError(
                    "pad_same",
                    'pad "same" needs stride 1 (got stride {stride}); give pad as an integer',
                    {"stride": stride},
                )
            if size is not None and size % 2 == 0:
                raise PydanticCustomError(
                    "pad_same",
                    'pad "same" needs an odd size so that P = (F - 1)/2 is whole (got size {size})',
                    {"size": size},
                )
        return pad


class Conv2D(Layer):
    """2-D convolution, K filters of F x F x C, stride S, padding P (zeros or edge)."""

    name: ClassVar[str] = "conv2d"
    summary: ClassVar[str] = "2-D convolution: K filters of F x F x C, stride S, zero or edge padding P."
    Config: ClassVar[type[Config]] = Conv2DConfig
    regularized: ClassVar[tuple[str, ...]] = ("W",)
    examples: ClassVar[tuple[dict, ...]] = (
        {"filters": 2, "size": 3},
        {"filters": 3, "size": 3, "pad": "same", "padding_mode": "edge"},
        {"filters": 2, "size": 2, "stride": 2},
        {"filters": 2, "size": 1},
    )
    example_shapes: ClassVar[tuple[tuple[int, ...], ...]] = ((6, 6, 3), (4, 4, 1))
    #: forward returns a new array and caches only its input and weights: a residual block
    #: may write into the output (see layers/residual.py).
    fresh_output: ClassVar[bool] = True

    @property
    def pad_amount(self) -> int:
        """P as an int ("same" is (F - 1)/2)."""
        return pad_amount(self.name, self.config.size, self.config.stride, self.config.pad)

    def infer(self, in_shape):
        """(H, W, C) -> (H', W', K); params (F*F*C + 1)*K; flops 2*F*F*C*K*H'*W' + K*H'*W' (bias)."""
        h, w, c = require_image(self.name, in_shape)
        f, s, p, k = self.config.size, self.config.stride, self.pad_amount, self.config.filters
        out_h = output_side(self.name, "height", h, f, s, p, window="kernel")
        out_w = output_side(self.name, "width", w, f, s, p, window="kernel")
        return ShapeInfo(
            out_shape=(out_h, out_w, k),
            params=(f * f * c + 1) * k,
            flops=2 * f * f * c * k * out_h * out_w + k * out_h * out_w,
        )

    def build(self, in_shape, rng, dtype=np.float32, initializer=None):
        """W: (F, F, C, K) from the initializer (fan_in F*F*C, fan_out F*F*K); b: zeros (K,)."""
        super().build(in_shape, rng, dtype, initializer)
        f, k = self.config.size, self.config.filters
        c = self.in_shape[2]
        w = draw_weights(initializer, (f, f, c, k), f * f * c, f * f * k, rng, dtype)
        self.params = {"W": w, "b": xp.zeros(k, dtype=dtype)}
        self.grads = {}

    def forward(self, x, training=False, rng=None):
        """x: (N, H, W, C) -> (N, H', W', K)."""
        out, self.cache = conv2d_forward(
            x,
            self.params["W"],
            self.params["b"],
            self.config.stride,
            self.pad_amount,
            self.config.padding_mode,
            Workspace.current().shared,
        )
        return out

    def backward(self, dout):
        """dout: (N, H', W', K) -> dx: (N, H, W, C), or None when need_input_grad is False."""
        dx, dw, db = conv2d_backward(dout, self.cache, self.need_input_grad)
        self.grads = {"W": dw, "b": db}
        return dx
