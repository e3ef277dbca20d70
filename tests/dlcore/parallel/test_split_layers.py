"""Convolution and pooling split over the batch on dlcore's pool give the same numbers.

The split runs only above a work size (``MIN_PARALLEL_BYTES``, ``MIN_PARALLEL_FLOPS``) and
with more than one BLAS thread; here the size floors are 0 and the BLAS has 2 threads, so the small shapes
of a gradient check take the split path: every piece is checked against centred
differences, against the same call run inline (to float32 rounding; bit for bit from run to run), and under concurrent
predictions on one model.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from dlcore import parallel
from dlcore.gradcheck import check_layer
from dlcore.layers.conv2d import Conv2D
from dlcore.layers.pooling import AvgPool, MaxPool
from dlcore.layers.sequential import Sequential

CONV_CASES = [
    ((6, 6, 3), {"filters": 4, "size": 3, "pad": 1}),
    ((5, 7, 2), {"filters": 3, "size": 3, "stride": 2, "pad": 2, "padding_mode": "edge"}),
    ((4, 4, 2), {"filters": 2, "size": 3, "pad": "same", "padding_mode": "edge"}),
    ((5, 5, 2), {"filters": 2, "size": 3, "stride": 3, "pad": 2}),
    ((3, 4, 2), {"filters": 2, "size": 1, "pad": 1, "padding_mode": "edge"}),
    ((5, 5, 3), {"filters": 4, "size": 3}),
    ((4, 4, 8), {"filters": 3, "size": 3, "pad": 1}),  # dx as a convolution of dout
]
POOL_CASES = [(MaxPool, {"size": 2}), (AvgPool, {"size": 2}), (MaxPool, {"size": 3, "stride": 1})]


@pytest.fixture
def split_always(monkeypatch):
    """Every parallel_over_batch call of the test splits over 2 threads, however small.

    Yields the set of threads that ran pieces, so a test can see the split happened.
    """
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 0)
    ran_pieces: set[str] = set()
    run_piece = parallel._run_in_pool

    def recording(fn, start, stop, index):
        ran_pieces.add(threading.current_thread().name)
        run_piece(fn, start, stop, index)

    monkeypatch.setattr(parallel, "_run_in_pool", recording)
    with threadpool_limits(limits=2, user_api="blas"):
        yield ran_pieces


def _conv(in_shape, dtype=np.float64, **cfg):
    layer = Conv2D(**cfg)
    layer.build(in_shape, np.random.default_rng(0), dtype)
    layer.params["b"][...] = np.random.default_rng(7).standard_normal(layer.params["b"].shape)
    return layer


def _spread(shape, rng):
    """Tie-free inputs at least 0.01 apart, as max pooling's gradient check needs."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0).astype(np.float64)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_split_convolution_gradients_match_centred_differences(split_always, case):
    in_shape, cfg = case
    layer = _conv(in_shape, **cfg)
    x = np.random.default_rng(1).standard_normal((5, *in_shape))
    errors = check_layer(layer, x, training=True)
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < 1e-7, errors
    assert len(split_always) == 2  # the caller and one pool thread each ran pieces


@pytest.mark.parametrize(("cls", "cfg"), POOL_CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_split_pooling_gradients_match_centred_differences(split_always, cls, cfg):
    layer = cls(**cfg)
    layer.build((6, 6, 3), np.random.default_rng(0), np.float64)
    errors = check_layer(layer, _spread((5, 6, 6, 3), np.random.default_rng(2)), training=True)
    assert set(errors) == {"x"} and errors["x"] < 1e-7, errors
    # Non-overlapping windows split over the batch; other strides loop over offsets inline.
    assert len(split_always) == (2 if layer.stride == layer.config.size else 0)


def _set_split_floor(monkeypatch, value):
    """The work below which parallel_over_batch runs inline, in bytes and in flops alike."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", value)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", value)


def _forward_backward(layer, x, dout_rng_seed=4):
    out = layer.forward(x, training=True)
    dout = np.random.default_rng(dout_rng_seed).standard_normal(out.shape).astype(x.dtype)
    dx = layer.backward(dout)
    return [out.copy(), dx.copy()] + [g.copy() for g in layer.grads.values()]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_split_convolution_equals_the_inline_pass(monkeypatch, case):
    """To float32 rounding: the BLAS may round a GEMM's rows differently when it gets fewer of
    them (another kernel for the tail rows), and dW and db are sums of the pieces' sums."""
    in_shape, cfg = case
    layer = _conv(in_shape, dtype=np.float32, **cfg)
    x = np.random.default_rng(3).standard_normal((7, *in_shape)).astype(np.float32)
    with threadpool_limits(limits=2, user_api="blas"):
        _set_split_floor(monkeypatch, 1 << 62)
        inline = _forward_backward(layer, x)
        _set_split_floor(monkeypatch, 0)
        split = _forward_backward(layer, x)
    for a, b in zip(inline, split, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_split_convolution_is_the_same_from_run_to_run(split_always):
    """The pieces' dW are added in piece order: two runs at one thread count agree bit for bit."""
    layer = _conv((6, 6, 3), dtype=np.float32, filters=4, size=3, pad=1)
    x = np.random.default_rng(3).standard_normal((9, 6, 6, 3)).astype(np.float32)
    first, second = _forward_backward(layer, x), _forward_backward(layer, x)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("cls", "cfg"), POOL_CASES, ids=lambda v: getattr(v, "name", str(v)))
def test_split_pooling_equals_the_inline_pass_bit_for_bit(monkeypatch, cls, cfg):
    layer = cls(**cfg)
    layer.build((6, 6, 3), np.random.default_rng(0), np.float32)
    x = np.random.default_rng(3).standard_normal((7, 6, 6, 3)).astype(np.float32)
    with threadpool_limits(limits=2, user_api="blas"):
        _set_split_floor(monkeypatch, 1 << 62)
        inline = _forward_backward(layer, x)
        _set_split_floor(monkeypatch, 0)
        split = _forward_backward(layer, x)
    for a, b in zip(inline, split, strict=True):
        np.testing.assert_array_equal(a, b)


def test_concurrent_forward_passes_on_one_network_through_the_split_path(split_always):
    """8 threads call forward on one network at once, every call split over the pool."""
    net = Sequential({"layers": [
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1}, {"type": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1, "padding_mode": "edge"},
        {"type": "avgpool", "size": 2}, {"type": "flatten"}, {"type": "affine", "units": 3},
    ]})
    net.build((8, 8, 2), np.random.default_rng(0), np.float32)
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal((int(rng.integers(2, 12)), 8, 8, 2)).astype(np.float32) for _ in range(160)]
    from dlcore.workspace import Workspace

    def predict(x):
        with Workspace().active():  # one workspace per call, as Model.scores does
            return net.forward(x)

    expected = [predict(x) for x in inputs]
    results: list = [None] * len(inputs)
    errors: list = []
    start = threading.Barrier(8)

    def worker(t):
        try:
            start.wait()
            for i in range(t, len(inputs), 8):
                results[i] = predict(inputs[i])
        except Exception as exc:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(split_always) >= 2
    assert [i for i, (got, want) in enumerate(zip(results, expected, strict=True)) if not np.array_equal(got, want)] == []


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_one_thread_convolution_gradients_match_centred_differences(case):
    """One BLAS thread: the whole batch is one piece, in the calling thread."""
    in_shape, cfg = case
    layer = _conv(in_shape, **cfg)
    x = np.random.default_rng(1).standard_normal((5, *in_shape))
    with threadpool_limits(limits=1, user_api="blas"):
        errors = check_layer(layer, x, training=True)
    assert set(errors) == {"x", "W", "b"} and max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_one_and_two_threads_agree(case):
    """The batch as one piece and as two (float64: the pieces' dW sums agree to rounding)."""
    in_shape, cfg = case
    layer = _conv(in_shape, **cfg)
    x = np.random.default_rng(3).standard_normal((7, *in_shape))
    by_threads = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            by_threads[threads] = _forward_backward(layer, x)
    for one, two in zip(by_threads[1], by_threads[2], strict=True):
        np.testing.assert_allclose(one, two, rtol=1e-12, atol=1e-12)
