"""npz files that used to get past validation: one class, huge labels, members that are not arrays."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from dlcore.datasets import MAX_CLASSES
from dlcore.errors import SpecError
from dlcore.spec import validate

MLP = {"architecture": "mlp", "width": 4}


def _errors(path) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate({"dataset": {"type": "npz", "path": str(path)}, "model": MLP})
    return {e.field: e.message for e in info.value.errors}


def test_a_single_class_is_refused_so_the_normalized_spec_validates_again(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, x=np.ones((6, 2)), y=np.zeros(6, int))
    assert "at least 2 classes" in _errors(path)["dataset.y"]
    np.savez(path, x=np.ones((6, 2)), y=np.ones(6, int))  # labels all 1: classes 0 and 1, class 0 empty
    normalized = validate({"dataset": {"type": "npz", "path": str(path)}, "model": MLP})
    assert validate(normalized.to_dict()) == normalized


@pytest.mark.parametrize("top", [MAX_CLASSES, 10**7, 1e30, np.iinfo(np.uint64).max], ids=["limit", "1e7", "1e30", "uint64"])
def test_labels_past_the_class_limit_are_refused(tmp_path, top):
    # 1e7 labels made a 1e14-cell confusion matrix (MemoryError); 1e30 wrapped to a negative int64
    path = tmp_path / "big.npz"
    y = np.array([0, 1, 0, 1, 0, top], dtype=np.asarray(top).dtype)
    np.savez(path, x=np.ones((6, 2)), y=y)
    assert f"at most {MAX_CLASSES}" in _errors(path)["dataset.y"]


def test_a_member_that_is_not_npy_is_a_dataset_error(tmp_path):
    path = tmp_path / "junk.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"not an array")
        z.writestr("y.npy", b"not an array")
    assert "not a .npy array" in _errors(path)["dataset.x"]
