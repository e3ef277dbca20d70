"""Sliding windows for layer authors: what convolution and pooling are made of (NHWC).

Public: dlcore's own conv2d, pooling and the dlcore-extras layers are written with
these, and a plugin's windowed layer should be too (docs/plugins.md shows one).

- :func:`require_image` checks that a per-sample shape is an image (H, W, C);
- :func:`pad_amount` turns a ``pad`` parameter (an int, or ``"same"``) into P;
- :func:`output_side` applies (W - F + 2P)/S + 1 and rejects impossible
  configurations with the formula and its numbers in the message;
- :func:`pad_image` returns x padded by zeros or by replicating the edge, and
  :func:`pad_into` writes the same into a buffer the caller reuses;
- :func:`fold_edge_grad` sends the gradient of replicated border pixels back to the
  edge pixels they copy (the backward of edge padding);
- :func:`window_view` is the strided (N, H', W', F, F, C) view of every window (the
  im2col copy is one assignment from it), and :func:`offset_slice` the rows or
  columns one kernel offset reads, for layers that loop over the F*F offsets instead.
"""

from __future__ import annotations

from dlcore.backend import xp
from dlcore.errors import ConfigError
from dlcore.layout import shape_to_public


def _fmt(value: float) -> str:
    return f"{value:g}"


def output_side(
    owner: str,
    axis: str,
    in_side: int,
    size: int,
    stride: int,
    pad: int | None = None,
    size_field: str = "size",
    stride_field: str = "stride",
    hint: str = "change size, stride or pad",
    window: str = "window",
) -> int:
    """Output side (in_side - size + 2*pad)/stride + 1, or a ConfigError stating the rule.

    Inputs:
    - owner: component name for the message (``conv2d``, ``maxpool``).
    - axis: ``"height"`` or ``"width"``.
    - in_side, size, stride: input side, window side F, stride S.
    - pad: padding P per side; None for layers without padding (the formula omits it).
    - size_field, stride_field: parameter names the errors blame; hint: how to fix.
    - window: what the message calls F ("kernel" for convolution).

    Returns:
    - the output side, a positive int.
    """
    padded = in_side + 2 * (pad or 0)
    pad_text = f" + 2*{pad}" if pad is not None else ""
    if size > padded:
        where = f"padded input {axis} {in_side}{pad_text} = {padded}" if pad is not None else f"input {axis} {in_side}"
        fix = "use a smaller size or more padding" if pad is not None else "use a smaller size"
        raise ConfigError(size_field, f"{owner}: {window} size {size} is larger than the {where}; {fix}")
    num = padded - size
    if num % stride:
        formula = f"({in_side} - {size}{pad_text})/{stride} + 1"
        raise ConfigError(
            stride_field,
            f"{owner}: output {axis} {formula} = {_fmt(num / stride + 1)} is not a whole number; {hint}",
        )
    return num // stride + 1


def pad_amount(owner: str, size: int, stride: int, pad: int | str) -> int:
    """P per side for a ``pad`` parameter: an int >= 0 as given, or ``"same"``, P = (F - 1)/2.

    "same" keeps H' = H, which needs stride 1 and an odd size F; otherwise a
    ConfigError on ``pad`` says which.
    """
    if pad != "same":
        return int(pad)
    if stride != 1:
        raise ConfigError("pad", f'{owner}: pad "same" needs stride 1 (got stride {stride}); give pad as an integer')
    if size % 2 == 0:
        raise ConfigError(
            "pad", f'{owner}: pad "same" needs an odd size so that P = (F - 1)/2 is whole (got size {size})'
        )
    return (size - 1) // 2


def require_image(owner: str, in_shape) -> tuple[int, int, int]:
    """(H, W, C) from a per-sample internal shape, or a ConfigError if it is not an image."""
    if len(in_shape) != 3:
        raise ConfigError(  # said in the user's layout: (C, H, W) per sample
            "", f"{owner}: needs an image input (C, H, W), got shape {shape_to_public(in_shape)}"
        )
    h, w, c = (int(s) for s in in_shape)
    return h, w, c


def pad_into(buf, x, pad: int, mode: str, clear_border: bool = False):
    """Write x into the centre of buf and fill its border.

    Inputs:
    - buf: (N, H + 2P, W + 2P, C) buffer; with mode "zeros" its border must already be
      zero (a reused buffer keeps a zero border, as only the centre is ever written),
      unless ``clear_border`` is True.
    - x: (N, H, W, C).
    - pad: P.
    - mode: "zeros" or "edge" (replicate the nearest edge pixel, corners included).
    - clear_border: with mode "zeros", write the zero border too (a buffer other callers
      share, see :meth:`dlcore.workspace.Workspace.shared`, holds their values there).

    Returns:
    - buf.
    """
    _, h, w, _ = x.shape
    buf[:, pad : pad + h, pad : pad + w] = x
    if mode == "zeros" and clear_border and pad:
        buf[:, :pad] = 0
        buf[:, pad + h :] = 0
        buf[:, pad : pad + h, :pad] = 0
        buf[:, pad : pad + h, pad + w :] = 0
    if mode == "edge":
        buf[:, :pad, pad : pad + w] = buf[:, pad : pad + 1, pad : pad + w]
        buf[:, pad + h :, pad : pad + w] = buf[:, pad + h - 1 : pad + h, pad : pad + w]
        # Columns last, over the full padded height, so the corners copy the corner pixels.
        buf[:, :, :pad] = buf[:, :, pad : pad + 1]
        buf[:, :, pad + w :] = buf[:, :, pad + w - 1 : pad + w]
    return buf


def pad_image(x, pad: int, mode: str = "zeros"):
    """x padded by P on each side of its height and width.

    Inputs:
    - x: (N, H, W, C).
    - pad: P; 0 returns x itself.
    - mode: "zeros", or "edge" to replicate the nearest edge pixel.

    Returns:
    - (N, H + 2P, W + 2P, C), a new array (unless P is 0).
    """
    if not pad:
        return x
    n, h, w, c = x.shape
    return pad_into(xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype), x, pad, mode)


def fold_edge_grad(dbuf, pad: int, h: int, w: int):
    """Add the gradient of edge-replicated border pixels onto the edge pixels, in place.

    Inputs:
    - dbuf: (N, H + 2P, W + 2P, C) gradient with respect to the padded input.
    - pad, h, w: P and the unpadded H, W.

    Returns:
    - dbuf, whose centre (N, H, W, C) now holds the gradient with respect to x.
    """
    # Rows first over the full padded width, then columns over the centre rows:
    # a corner's gradient goes to its row's edge, then to the corner pixel.
    dbuf[:, pad] += dbuf[:, :pad].sum(axis=1)
    dbuf[:, pad + h - 1] += dbuf[:, pad + h :].sum(axis=1)
    rows = dbuf[:, pad : pad + h]
    rows[:, :, pad] += rows[:, :, :pad].sum(axis=2)
    rows[:, :, pad + w - 1] += rows[:, :, pad + w :].sum(axis=2)
    return dbuf


def window_view(xpad, size: int, stride: int, out_h: int, out_w: int):
    """Read-only strided view of every F x F window: (N, H', W', F, F, C).

    Inputs:
    - xpad: (N, Hp, Wp, C) padded input, any strides.
    - size, stride: F and S.
    - out_h, out_w: H', W' from :func:`output_side`.

    Returns:
    - windows[n, i, j, di, dj, c] = xpad[n, i*S + di, j*S + dj, c] (no copy).
    """
    sn, sh, sw, sc = xpad.strides
    n, _, _, c = xpad.shape
    return xp.lib.stride_tricks.as_strided(
        xpad,
        shape=(n, out_h, out_w, size, size, c),
        strides=(sn, sh * stride, sw * stride, sh, sw, sc),
        writeable=False,
    )


def offset_slice(offset: int, stride: int, out_side: int) -> slice:
    """The input rows (or columns) that kernel offset ``offset`` reads for every output position."""
    return slice(offset, offset + stride * (out_side - 1) + 1, stride)
