"""A user's own data set: an ``.npz`` file holding ``x`` and ``y``, loaded without pickle.

``x`` is (N, D), (N, H, W) or (N, C, H, W) numbers, ``y`` is (N,) integer labels
in [0, C).  (N, H, W) becomes (N, 1, H, W).  To dlcore a data set is a ``path``, or
arrays: a spec declaring ``sample_shape`` and ``num_classes`` validates without any
file, and the arrays are given to the trainer (``Trainer(spec, data=(x, y))``; the
service does so with an uploaded file it read with :func:`load_npz`).
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any, BinaryIO, ClassVar

import numpy as np
from pydantic import Field, model_validator

from dlcore.component import Dataset, Shape
from dlcore.config import Config
from dlcore.datasets import MAX_CLASSES
from dlcore.errors import ConfigError


def _open_npz(source: Any):
    """np.load of a path, bytes or a binary file, never unpickling; ConfigError if not an .npz."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    try:
        data = np.load(source, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError("dataset", f"npz: not a readable .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ConfigError(
            "dataset",
            "npz: the file is a single .npy array; save x and y with np.savez(file, x=x, y=y)",
        )
    return data


def _read_array(data, key: str) -> np.ndarray:
    if key not in data.files:
        raise ConfigError(
            f"dataset.{key}",
            f"npz: the file has no array '{key}' (it has: {', '.join(data.files) or 'none'})",
        )
    try:
        array = data[key]
    except ValueError as exc:  # numpy refuses object arrays when allow_pickle=False
        if "pickle" not in str(exc):
            raise ConfigError(f"dataset.{key}", f"npz: '{key}' is not a readable array ({exc})") from None
        raise ConfigError(
            f"dataset.{key}",
            f"npz: '{key}' is an array of Python objects, which would need pickle; save a numeric array ({exc})",
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"dataset.{key}", f"npz: '{key}' is not a readable array ({exc})") from None
    if not isinstance(array, np.ndarray):  # a member that is not .npy comes back as raw bytes
        raise ConfigError(f"dataset.{key}", f"npz: '{key}' is not a .npy array; save x and y with np.savez(file, x=x, y=y)")
    return array


def check_arrays(
    x: np.ndarray, y: np.ndarray, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate and normalize a data set's arrays.

    Inputs:
    - x: (N, D), (N, H, W) or (N, C, H, W) numbers
    - y: (N,) integer labels (whole-valued floats are accepted)
    - num_classes: C when known; labels must then be in [0, C)

    Returns:
    - x: (N, D) or (N, C, H, W), floating (float32 and float64 kept, others become float64)
    - y: (N,) int64
    - num_classes: C (given, or max label + 1)

    Raises ConfigError naming ``dataset.x`` or ``dataset.y`` and the reason.
    """
    if x.dtype.kind not in "biuf":
        raise ConfigError("dataset.x", f"npz: x must hold numbers, not dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise ConfigError(
            "dataset.x", f"npz: x must be (N, D), (N, H, W) or (N, C, H, W), got shape {x.shape}"
        )
    if x.shape[0] == 0 or x.size == 0:
        raise ConfigError("dataset.x", f"npz: x holds no data (shape {x.shape})")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ConfigError("dataset.x", f"npz: x has {bad} NaN or infinite values")
    if y.dtype.kind not in "biuf":
        raise ConfigError("dataset.y", f"npz: y must hold integer labels, not dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(
            "dataset.y",
            f"npz: y must be (N,) with N = {x.shape[0]} samples as in x, got shape {y.shape}",
        )
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
        raise ConfigError(
            "dataset.y",
            "npz: y must hold integer labels; it has fractional, NaN or infinite values",
        )
    if y.min() < 0:
        raise ConfigError("dataset.y", f"npz: labels must be in [0, C); found {y.min()}")
    if y.max() >= MAX_CLASSES:  # compared before the cast: 1e30 would wrap around in int64
        raise ConfigError(
            "dataset.y", f"npz: labels go up to {y.max()}, so {y.max()} + 1 classes; at most {MAX_CLASSES} are supported"
        )
    labels = y.astype(np.int64)
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if classes < 2:
        raise ConfigError("dataset.y", "npz: every label is 0: a classifier needs at least 2 classes")
    if labels.max() >= classes:
        raise ConfigError(
            "dataset.y", f"npz: labels must be in [0, {classes}); found {int(labels.max())}"
        )
    if x.ndim == 3:
        x = x[:, None, :, :]
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x, labels, classes


def inspect_npz(source: str | os.PathLike | bytes | BinaryIO) -> dict:
    """What an uploaded ``.npz`` holds, after every check ``load`` makes.

    Inputs:
    - source: a path, the file's bytes, or a binary file object

    Returns:
    - {"sample_shape": [C, H, W] or [D], "num_classes": int, "n_samples": int}

    Raises ConfigError (pickled objects, NaN, bad shapes or labels, not an .npz).
    """
    with _open_npz(source) as data:
        x, _, classes = check_arrays(_read_array(data, "x"), _read_array(data, "y"))
    return {
        "sample_shape": [int(s) for s in x.shape[1:]],
        "num_classes": classes,
        "n_samples": int(x.shape[0]),
    }


def load_npz(source: str | os.PathLike | bytes | BinaryIO, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The checked arrays of an ``.npz`` holding ``x`` and ``y`` (see :func:`check_arrays`).

    Inputs:
    - source: a path, the file's bytes, or a binary file object
    - num_classes: C when known; labels must then be in [0, C)
    Returns: x: (N, D) or (N, C, H, W) float, y: (N,) int64.
    Raises ConfigError naming ``dataset``, ``dataset.x`` or ``dataset.y``.
    """
    with _open_npz(source) as data:
        x, y, _ = check_arrays(_read_array(data, "x"), _read_array(data, "y"), num_classes)
    return x, y


class NpzConfig(Config):
    path: str | None = Field(
        None,
        description="File to load; without it, sample_shape and num_classes describe arrays given to the trainer.",
    )
    sample_shape: list[int] | None = Field(
        None,
        min_length=1,
        max_length=3,
        description="Public per-sample shape [C, H, W] or [D]; read from the file when absent.",
    )
    num_classes: int | None = Field(
        None, ge=2, le=MAX_CLASSES, description="Number of classes; read from the file when absent."
    )

    @model_validator(mode="after")
    def _names_a_file(self):
        if self.path is None and (self.sample_shape is None or self.num_classes is None):
            raise ValueError(
                "give a path, or sample_shape and num_classes of the arrays passed to the trainer as data=(x, y)"
            )
        if self.sample_shape is not None and (
            len(self.sample_shape) == 2 or min(self.sample_shape) < 1
        ):
            raise ValueError(
                f"sample_shape must be [D] or [C, H, W] of positive sizes, got {self.sample_shape}"
            )
        return self


class Npz(Dataset):
    """Your own data from an ``.npz`` with ``x`` and ``y``, checked for shape, dtype, NaN and labels."""

    name = "npz"
    summary = "Your own data: an .npz with x (N, D | N, H, W | N, C, H, W) and y (N,), loaded without pickle."
    Config = NpzConfig
    examples = ({"sample_shape": [1, 8, 8], "num_classes": 10},)
    expected_failures: ClassVar[dict[str, str]] = {
        "check_dataset_load": "loading needs a user's file (a path) or arrays given to the trainer; "
        "tests/dlcore/models/test_datasets.py loads real files"
    }

    def _inspected(self) -> dict:
        if not hasattr(self, "_inspection"):
            self._inspection = inspect_npz(self.config.path)
        return self._inspection

    def sample_shape(self) -> Shape:
        if self.config.sample_shape is not None:
            return tuple(self.config.sample_shape)
        return tuple(self._inspected()["sample_shape"])

    def num_classes(self) -> int:
        if self.config.num_classes is not None:
            return self.config.num_classes
        return self._inspected()["num_classes"]

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns x: (N, D) or (N, C, H, W) float, y: (N,) int64, after every check."""
        if self.config.path is None:
            raise ConfigError(
                "dataset.path",
                "npz: no path to load; pass the arrays to the trainer as data=(x, y)",
            )
        x, y = load_npz(self.config.path, self.config.num_classes)
        if self.config.sample_shape is not None and tuple(x.shape[1:]) != tuple(
            self.config.sample_shape
        ):
            raise ConfigError(
                "dataset.x",
                f"npz: samples are {tuple(x.shape[1:])} but sample_shape says {tuple(self.config.sample_shape)}",
            )
        return x, y
