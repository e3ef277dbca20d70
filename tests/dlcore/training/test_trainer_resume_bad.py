"""Resuming from a checkpoint that does not fit this run is bad_checkpoint, never a KeyError or IndexError."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.model import read_npz, write_npz
from dlcore.training import TrainingFailed, train


def _spec(path) -> dict:
    return {
        "dataset": {"type": "npz", "path": str(path)},
        "model": {"architecture": "mlp", "width": 4},
        "training": {"epochs": 2, "batch_size": 4, "checkpoint_every": 1},
    }


class StopAfterFirst:
    def __init__(self):
        self.data = None

    def on_checkpoint(self, trainer, data, iteration):
        self.data = data
        trainer.request_stop("test")


def _save(path, n: int) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.standard_normal((n, 2)), y=np.arange(n) % 2)


def _checkpoint(path) -> bytes:
    cb = StopAfterFirst()
    assert train(_spec(path), callbacks=[cb]).stopped
    return cb.data


def test_a_data_file_that_changed_size_since_the_checkpoint(tmp_path):
    path = tmp_path / "d.npz"
    _save(path, 20)
    data = _checkpoint(path)
    _save(path, 40)  # same spec (the path is not part of its identity), other data: the order no longer fits
    with pytest.raises(TrainingFailed) as info:
        train(_spec(path), resume_from=data)
    assert info.value.code == "bad_checkpoint" and "training samples" in info.value.message


@pytest.mark.parametrize("missing", ["opt_t", "meta_json"])
def test_a_checkpoint_missing_an_array(tmp_path, missing):
    path = tmp_path / "d.npz"
    _save(path, 20)
    arrays = read_npz(_checkpoint(path))
    del arrays[missing]
    with pytest.raises(TrainingFailed) as info:
        train(_spec(path), resume_from=write_npz(arrays))
    assert info.value.code == "bad_checkpoint"
