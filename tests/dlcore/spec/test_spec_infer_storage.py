"""infer()'s storage figures: a checkpoint's arrays and one evaluation pass, from the spec alone."""

from __future__ import annotations

import io

import numpy as np
import pytest

from dlcore.spec import infer
from dlcore.training import train
from dlcore.training.checkpoint import unpack_checkpoint

MLP = {
    "dataset": {"type": "spiral", "points_per_class": 20},
    "model": {"layers": [{"type": "affine", "units": 5}, {"type": "relu"}, {"type": "affine", "units": 3}]},
    "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 30, "dtype": "float64"},
}


@pytest.mark.parametrize(("optimizer", "slots"), [("sgd", 0), ("momentum", 1), ("nesterov", 1),
                                                  ("adagrad", 1), ("rmsprop", 1), ("adam", 2)])
def test_checkpoint_bytes_are_the_arrays_a_checkpoint_stores(optimizer, slots):
    spec = dict(MLP, optimizer={"type": optimizer})
    summary = infer(spec)
    assert summary["optimizer_slots"] == slots
    assert summary["checkpoint_bytes"] == summary["total_params"] * (1 + slots) * 8
    saved = {}

    class Keep:
        def on_checkpoint(self, trainer, data, iteration):
            saved["data"] = data

    train(spec, callbacks=[Keep()])
    arrays, _ = unpack_checkpoint(saved["data"])
    # adam's step counter per parameter is a scalar, not a slot the shape of the parameter
    stored = sum(a.nbytes for k, a in arrays.items() if k.startswith(("param/", "opt/")) and not k.endswith("/t"))
    assert stored == summary["checkpoint_bytes"]


def test_eval_memory_is_activations_per_sample_times_eval_batch():
    summary = infer(MLP)
    per_sample = (2 + 5 + 5 + 3) * 8  # input, affine, relu, affine
    assert summary["activation_bytes_per_sample"] == per_sample
    assert summary["eval_memory_bytes"] == per_sample * 30
    assert summary["memory_bytes"] == per_sample * 16


def test_a_checkpoint_resumes_from_a_file_as_from_bytes():
    spec = dict(MLP, training=dict(MLP["training"], epochs=2, checkpoint_every=2))
    saved = {}

    class Keep:
        def on_checkpoint(self, trainer, data, iteration):
            if iteration == 2:
                saved["data"] = data
                buf = io.BytesIO()
                trainer.checkpoint(file=buf)
                saved["file"] = buf.getvalue()

    whole = train(spec, callbacks=[Keep()])
    from_bytes, _ = unpack_checkpoint(saved["data"])
    from_a_file, _ = unpack_checkpoint(io.BytesIO(saved["file"]))
    assert from_bytes.keys() == from_a_file.keys()  # written to a file or as bytes: the same arrays
    for key in from_bytes.keys() - {"meta_json"}:  # the metadata holds the elapsed seconds
        assert np.array_equal(from_bytes[key], from_a_file[key]), key
    from_file = train(spec, resume_from=io.BytesIO(saved["data"]))
    for key, value in whole.model.params().items():
        assert np.array_equal(value, from_file.model.params()[key])


def test_a_callback_asking_for_files_gets_each_checkpoint_as_a_file_it_resumes_from():
    spec = dict(MLP, training=dict(MLP["training"], epochs=2, checkpoint_every=2))
    files = []

    class KeepFiles:
        checkpoint_as_file = True

        def on_checkpoint(self, trainer, checkpoint, iteration):
            assert not isinstance(checkpoint, bytes) and checkpoint.tell() == 0
            files.append((iteration, checkpoint))

    whole = train(spec, callbacks=[KeepFiles()])
    iteration, file = files[0]
    assert unpack_checkpoint(file)[1]["iteration"] == iteration
    file.seek(0)
    resumed = train(spec, resume_from=file)
    for key, value in whole.model.params().items():
        assert np.array_equal(value, resumed.model.params()[key])
    for _, f in files:
        f.close()
