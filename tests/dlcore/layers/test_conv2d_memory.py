"""conv2d keeps no columns between forward and backward: one buffer shared by every layer of a
workspace, filled a block of samples at a time (issue 12: peak memory at most 1.5x PyTorch's).

Blocks are forced small here (``COLUMN_BLOCK_BYTES``) so that every path runs several blocks,
with batches that do not divide evenly, at one and at two threads, against PyTorch in float64.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from dlcore.gradcheck import reference_error
from dlcore.layers import conv2d
from dlcore.layers.conv2d import Conv2D, _sample_blocks
from dlcore.workspace import Workspace

CASES = [
    ((8, 8, 3), {"filters": 4, "size": 3, "pad": 1}),
    ((9, 9, 2), {"filters": 3, "size": 3, "stride": 2, "pad": 1}),
    ((6, 6, 3), {"filters": 4, "size": 3, "pad": "same", "padding_mode": "edge"}),
    ((5, 5, 2), {"filters": 3, "size": 3, "stride": 3, "pad": 2}),
    ((5, 5, 4), {"filters": 6, "size": 1, "pad": 1}),
]


def case_id(case):
    shape, cfg = case
    return "x".join(map(str, shape)) + "-" + "-".join(f"{k}{v}" for k, v in cfg.items())


def built(in_shape, seed=0, **cfg):
    layer = Conv2D(**cfg)
    layer.build(in_shape, np.random.default_rng(seed), np.float64)
    layer.params["b"][...] = np.random.default_rng(seed + 7).standard_normal(layer.params["b"].shape)
    return layer


@pytest.fixture
def small_blocks(monkeypatch):
    """Columns of about 20 KB a block: 1 to 4 samples of the cases above (float64), up to 7 blocks."""
    monkeypatch.setattr(conv2d, "COLUMN_BLOCK_BYTES", 20000)


def test_blocks_are_equal_cover_the_batch_and_respect_the_size():
    for n, rows, width in [(64, 1024, 145), (7, 3, 5), (1, 100, 100), (5, 1, 1)]:
        blocks = _sample_blocks(n, rows, width, 4)
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
        sizes = [j - i for i, j in blocks]
        assert max(sizes) - min(sizes[:-1] or sizes) <= 1 or len(blocks) == 1
        assert all(s == 1 or s * rows * width * 4 < 2 * conv2d.COLUMN_BLOCK_BYTES for s in sizes)
    # resnet_tiny's 16-channel layers: 38 MB of columns in 16 blocks of 2.4 MB
    assert _sample_blocks(64, 1024, 145, 4) == [(i, i + 4) for i in range(0, 64, 4)]


@pytest.mark.torch
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_blocked_columns_match_torch(small_blocks, case, threads):
    pytest.importorskip("torch")
    from tests.dlcore.layers.test_conv2d import torch_conv

    in_shape, cfg = case
    layer = built(in_shape, **cfg)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7,) + in_shape)
    with threadpool_limits(limits=threads, user_api="blas"):
        out = layer.forward(x, training=True)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
    ref = torch_conv(
        x, layer.params["W"], layer.params["b"], layer.config.stride, layer.pad_amount, layer.config.padding_mode, dout
    )
    ours = {"out": out, "x": dx, "W": layer.grads["W"], "b": layer.grads["b"]}
    for key, value in ours.items():
        assert reference_error(value, ref[key]) < 1e-10, key


def test_layers_share_one_buffer_and_backward_rebuilds_what_the_next_forward_overwrote(small_blocks):
    """Two layers in one workspace, both forwards before either backward (as a network runs):
    the second overwrites the shared columns, and the first's gradients are still right."""
    first, second = built((6, 6, 2), filters=3, size=3, pad=1), built((6, 6, 3), seed=1, filters=2, size=3)
    x = np.random.default_rng(1).standard_normal((5, 6, 6, 2))
    dout = np.random.default_rng(2).standard_normal((5, 4, 4, 2))
    with Workspace().active() as workspace:
        h = first.forward(x, training=True)
        out = second.forward(h, training=True)
        held = workspace.nbytes()
        dh = second.backward(dout)
        dx = first.backward(dh)
        assert workspace.nbytes() == held  # the backward passes made no buffer of their own
    alone = built((6, 6, 2), filters=3, size=3, pad=1)
    alone.forward(x, training=True)
    np.testing.assert_allclose(alone.backward(dh), dx, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(alone.grads["W"], first.grads["W"], rtol=1e-12, atol=1e-13)
    assert not np.shares_memory(out, h)


def test_the_cache_holds_no_workspace_buffer():
    layer = built((8, 8, 3), filters=4, size=3, pad=1)
    x = np.random.default_rng(1).standard_normal((4, 8, 8, 3))
    with Workspace().active() as workspace:
        out = layer.forward(x, training=True)
        buffers = [buf for buf in workspace._shared.values()]
    cached = [a for a in layer.cache if isinstance(a, np.ndarray)]
    assert cached and all(not np.shares_memory(a, buf) for a in cached for buf in buffers)
    assert all(not np.shares_memory(out, buf) for buf in buffers)
    assert Conv2D.fresh_output


def test_shared_buffer_grows_to_the_largest_request_and_is_reused():
    workspace = Workspace()
    small = workspace.shared("k", (10, 3), np.float32)
    large = workspace.shared("k", (20, 5), np.float32)
    again = workspace.shared("k", (4, 4), np.float32, fill=2)
    assert large.base is again.base and small.base is not large.base
    assert workspace.nbytes() == 100 * 4
    assert again.shape == (4, 4) and (again == 2).all() and again.flags.c_contiguous
    assert workspace.shared("k", (3,), np.float64).base is not large.base  # one buffer per dtype


def test_an_empty_batch_gives_empty_outputs_and_zero_gradients():
    layer = built((5, 5, 3), filters=2, size=3, pad=1)
    out = layer.forward(np.zeros((0, 5, 5, 3)), training=True)
    dx = layer.backward(np.zeros(out.shape))
    assert out.shape == (0, 5, 5, 2) and dx.shape == (0, 5, 5, 3)
    assert not layer.grads["W"].any() and not layer.grads["b"].any()
