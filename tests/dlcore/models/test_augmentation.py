"""Flip and crop on public (N, C, H, W) batches, and building them from spec entries."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore.augmentation import Crop, Flip, make_augmentation
from dlcore.errors import ConfigError


def images(n=64, c=2, h=5, w=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w))


def test_flip_mirrors_each_image_or_leaves_it():
    x = images()
    before = x.copy()
    out = Flip(p=0.5).apply(x, np.random.default_rng(1))
    np.testing.assert_array_equal(x, before)
    flipped = np.array([np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert np.all(flipped ^ kept)
    assert 16 < flipped.sum() < 48  # 64 draws at p = 0.5
    np.testing.assert_array_equal(out, Flip(p=0.5).apply(x, np.random.default_rng(1)))
    np.testing.assert_array_equal(Flip(p=1.0).apply(x, np.random.default_rng(1)), x[..., ::-1])
    np.testing.assert_array_equal(Flip(p=0.0).apply(x, np.random.default_rng(1)), x)


def test_crop_is_a_window_of_the_zero_padded_image():
    pad = 2
    x = images(n=40)
    before = x.copy()
    out = Crop(pad=pad).apply(x, np.random.default_rng(2))
    np.testing.assert_array_equal(x, before)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    offsets = []
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if np.array_equal(out[i], padded[i, :, dy : dy + x.shape[2], dx : dx + x.shape[3]])
        ]
        assert len(matches) == 1, i
        offsets.append(matches[0])
    assert len(set(offsets)) > 8  # offsets are spread over the 25 possible windows
    np.testing.assert_array_equal(out, Crop(pad=pad).apply(x, np.random.default_rng(2)))


def test_make_augmentation_builds_and_rejects_entries():
    assert isinstance(make_augmentation({"type": "flip"}), Flip)
    crop = make_augmentation({"type": "crop", "pad": 3})
    assert isinstance(crop, Crop) and crop.config.pad == 3
    with pytest.raises(ConfigError) as exc:
        make_augmentation({"type": "rotate"}, "dataset.augment[0]")
    assert (
        exc.value.field == "dataset.augment[0].type"
        and "unknown augmentation 'rotate'" in exc.value.message
    )
    with pytest.raises(ConfigError) as exc:
        make_augmentation({"type": "crop", "pad": 0}, "dataset.augment[1]")
    assert exc.value.field == "dataset.augment[1].pad"
    with pytest.raises(ConfigError) as exc:
        make_augmentation({"type": "flip", "q": 1})
    assert exc.value.field == "q"


def test_augmentations_need_images():
    with pytest.raises(ConfigError) as exc:
        Flip().check_shape((2,))
    assert "(2,)" in exc.value.message
    Crop().check_shape((3, 8, 8))
