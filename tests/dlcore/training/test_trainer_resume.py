"""Stop anywhere, resume, and end bit-identical to the run that never stopped."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dlcore.training import Callback, TrainingFailed, train

SPEC = {
    "name": "resume",
    "dataset": {
        "type": "shapes", "size": 8, "count": 64, "channels": 2, "seed": 3, "val_fraction": 0.25,
        "preprocess": [{"type": "per_channel_mean"}],
        "augment": [{"type": "flip"}, {"type": "crop", "pad": 1}],
    },
    "model": {"layers": [
        {"type": "conv2d", "filters": 4, "size": 3, "pad": 1},
        {"type": "spatial_batchnorm"},
        {"type": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "flatten"},
        {"type": "affine", "units": 12},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "dropout", "p": 0.3},
        {"type": "affine", "units": 4},
    ]},
    "regularization": [{"type": "l2", "strength": 0.001}],
    "schedule": {"type": "cosine", "t_max": 3},
    "training": {"epochs": 3, "batch_size": 10, "seed": 11, "dtype": "float64", "checkpoint_every": 2},
}


class Recorder(Callback):
    """Keeps every checkpoint; asks for a stop at ``stop_at``."""

    def __init__(self, stop_at: int | None = None):
        self.stop_at = stop_at
        self.checkpoints: list[tuple[int, bytes]] = []

    def on_iteration(self, trainer, info):
        if info.iteration == self.stop_at:
            trainer.request_stop("test stop")

    def on_checkpoint(self, trainer, data, iteration):
        self.checkpoints.append((iteration, data))


def spec_with(optimizer: dict) -> dict:
    spec = copy.deepcopy(SPEC)
    spec["optimizer"] = optimizer
    return spec


def assert_same_model(a, b):
    pa, pb = a.params(), b.params()
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    for k, v in a.state().items():
        assert np.array_equal(v, b.state()[k]), k
    assert a.to_bytes() == b.to_bytes()


@pytest.mark.parametrize("optimizer", [{"type": "momentum", "lr": 0.05}, {"type": "adam", "lr": 0.01}], ids=["momentum", "adam"])
def test_stop_at_a_random_iteration_then_resume_is_bit_identical(optimizer):
    spec = spec_with(optimizer)
    full_rec = Recorder()
    full = train(spec, callbacks=[full_rec])
    total = full.history[-1]["iteration"]
    first_checkpoint = full_rec.checkpoints[0][0]
    stop_at = int(np.random.default_rng().integers(first_checkpoint + 1, total))  # a different iteration every run
    stopper = Recorder(stop_at=stop_at)
    part = train(spec, callbacks=[stopper])
    assert part.stopped and part.stop_reason == "test stop", stop_at
    last_iteration, last = stopper.checkpoints[-1]
    assert last_iteration == stop_at
    resumed = train(spec, resume_from=last)
    assert_same_model(full.model, resumed.model)
    assert resumed.history == [{**h, "seconds": r["seconds"]} for h, r in zip(full.history, resumed.history)]


def test_resume_from_every_periodic_checkpoint():
    spec = spec_with({"type": "momentum", "lr": 0.05})
    rec = Recorder()
    full = train(spec, callbacks=[rec])
    assert [it for it, _ in rec.checkpoints][:3] == [2, 4, 6]
    for _, data in rec.checkpoints[:: max(1, len(rec.checkpoints) // 3)]:
        assert_same_model(full.model, train(spec, resume_from=data).model)


def test_two_runs_of_one_spec_give_equal_bytes():
    spec = spec_with({"type": "adam", "lr": 0.01})
    assert train(spec).model.to_bytes() == train(spec).model.to_bytes()


def test_checkpoint_records_versions_and_refuses_another_spec():
    from dlcore.training.checkpoint import unpack_checkpoint

    spec = spec_with({"type": "sgd", "lr": 0.05})
    rec = Recorder()
    train(spec, callbacks=[rec])
    arrays, meta = unpack_checkpoint(rec.checkpoints[0][1])
    assert meta["versions"]["numpy"] == np.__version__
    from threadpoolctl import threadpool_info

    running = [(i["internal_api"], i["version"], i["num_threads"]) for i in threadpool_info()]
    assert running, "threadpoolctl finds no BLAS: the thread count would not be recorded"
    assert [(b["internal_api"], b["version"], b["num_threads"]) for b in meta["versions"]["blas"]] == running
    assert set(meta["rng"]) == {"init", "order", "noise"}
    assert not any(a.dtype.hasobject for a in arrays.values())
    other = copy.deepcopy(spec)
    other["training"]["seed"] = 12
    with pytest.raises(TrainingFailed, match="different spec") as info:
        train(other, resume_from=rec.checkpoints[0][1])
    assert info.value.code == "bad_checkpoint"
    with pytest.raises(TrainingFailed, match="not a checkpoint") as info:
        train(spec, resume_from=train(spec).model.to_bytes())  # a model file is not a checkpoint
    assert info.value.code == "bad_checkpoint"
    with pytest.raises(TrainingFailed) as info:
        train(spec, resume_from=b"not a zip file")
    assert info.value.code == "bad_checkpoint"


def test_resuming_on_another_blas_thread_count_is_reported(monkeypatch):
    from dlcore.training import checkpoint, trainer

    spec = spec_with({"type": "sgd", "lr": 0.05})
    rec = Recorder()
    full = train(spec, callbacks=[rec])
    data = rec.checkpoints[0][1]
    assert not [e for e in train(spec, resume_from=data).events if e["code"] == "runtime_changed"]  # same runtime

    saved = checkpoint.runtime_versions()
    other = {**saved, "blas": [{**b, "num_threads": b["num_threads"] + 1} for b in saved["blas"]]}
    monkeypatch.setattr(trainer, "runtime_versions", lambda: other)
    resumed = train(spec, resume_from=data)
    (event,) = [e for e in resumed.events if e["code"] == "runtime_changed"]
    assert event["severity"] == "warning" and event["iteration"] == rec.checkpoints[0][0]
    assert "blas num_threads" in event["data"] and "last bits" in event["message"]
    assert_same_model(full.model, resumed.model)  # same BLAS really: still identical
