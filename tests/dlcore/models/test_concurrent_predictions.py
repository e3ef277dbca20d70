"""One loaded model serves concurrent predictions with no lock and no copy of its weights.

The layer contract: weights and state are shared and read-only in evaluation, a cache is
a value, and scratch buffers live in a workspace of the caller (``Model.scores`` makes one
per call). Before, conv2d kept its padded input and im2col columns on the layer, and two
threads predicting at once mixed each other's windows.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dlcore.loading import load_model
from dlcore.registry import default_registry
from dlcore.training import train
from dlcore.workspace import Workspace

THREADS, CALLS = 8, 50

SPEC = {
    "dataset": {"type": "shapes", "size": 8, "count": 64, "channels": 2, "classes": 3, "seed": 4,
                "preprocess": [{"type": "per_channel_mean"}]},
    "model": {"layers": [
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1},
        {"type": "spatial_batchnorm"},
        {"type": "relu"},
        {"type": "conv2d", "filters": 4, "size": 3, "pad": "same", "padding_mode": "edge"},
        {"type": "maxpool", "size": 2},
        {"type": "residual", "layers": [{"type": "conv2d", "filters": 4, "size": 3, "pad": 1}]},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.3},
        {"type": "affine", "units": 8},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "affine", "units": 3},
    ]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 1, "batch_size": 16, "dtype": "float32", "seed": 3},
}


@pytest.fixture(scope="module")
def model():
    # Loaded from bytes, as the API loads a finished job's model.
    return load_model(train(SPEC).model.to_bytes())


@pytest.fixture(scope="module")
def inputs():
    x, _ = default_registry().get("datasets", "shapes")(
        {"size": 8, "count": 64, "channels": 2, "classes": 3, "seed": 9}
    ).load()
    rng = np.random.default_rng(0)
    # Different inputs and batch sizes per call: buffers of different shapes in flight at once.
    return [x[rng.integers(0, len(x), size=int(rng.integers(1, 40)))] for _ in range(THREADS * CALLS)]


def test_concurrent_predictions_equal_the_same_calls_one_by_one(model, inputs):
    expected = [model.predict_proba(x) for x in inputs]
    weights_before = {k: v.copy() for k, v in model.params().items()}
    state_before = {k: v.copy() for k, v in model.state().items()}
    results: list = [None] * len(inputs)
    errors: list = []
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(t, len(inputs), THREADS):
                results[i] = model.predict_proba(inputs[i])
        except Exception as exc:  # noqa: BLE001  reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    mismatched = [i for i, (got, want) in enumerate(zip(results, expected)) if not np.array_equal(got, want)]
    assert mismatched == []
    # Evaluation wrote no weight and no running statistic.
    for key, arr in model.params().items():
        np.testing.assert_array_equal(arr, weights_before[key])
    for key, arr in model.state().items():
        np.testing.assert_array_equal(arr, state_before[key])


def test_a_prediction_keeps_no_scratch_in_the_thread_workspace(model, inputs):
    """Predictions run in a workspace of their own: the thread's (the trainer's) gains nothing."""
    held_before = Workspace.of_thread().nbytes()
    model.predict_proba(inputs[0])
    assert Workspace.of_thread().nbytes() == held_before


def test_training_passes_reuse_the_thread_workspace_buffers():
    """Outside ``Model.scores`` a layer's scratch is the thread's, reused call after call."""
    from dlcore.layers.conv2d import Conv2D

    layer = Conv2D(filters=4, size=3, pad=1)
    layer.build((8, 8, 2), np.random.default_rng(0), np.float32)
    x = np.random.default_rng(1).standard_normal((4, 8, 8, 2)).astype(np.float32)

    def columns_buffer(workspace):  # the memory behind the conv2d columns every layer shares
        return workspace.shared("conv2d.cols", (1,), np.float32).base

    layer.forward(x, training=True)
    cols, held = columns_buffer(Workspace.of_thread()), Workspace.of_thread().nbytes()
    layer.backward(np.ones((4, 8, 8, 4), np.float32))
    layer.forward(x + 1, training=True)
    # the same array, rewritten: no fresh 32 MB per step
    assert columns_buffer(Workspace.of_thread()) is cols
    assert Workspace.of_thread().nbytes() == held
    with Workspace().active() as own:
        layer.forward(x, training=True)
        assert columns_buffer(own) is not cols
    assert Workspace.of_thread().nbytes() == held
