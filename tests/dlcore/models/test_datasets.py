"""Datasets (digits, spiral, shapes, npz), npz rejections and the stratified split."""

from __future__ import annotations

import io

import numpy as np
import pytest

from dlcore.datasets.npz import Npz, inspect_npz
from dlcore.datasets.shapes import SHAPE_NAMES, Shapes
from dlcore.datasets.spiral import Spiral
from dlcore.datasets.split import stratified_split
from dlcore.errors import ConfigError
from dlcore.registry import default_registry


def dataset(name, params=None):
    return default_registry().get("datasets", name)(params or {})


@pytest.mark.parametrize(
    "name, params",
    [
        ("digits", {}),
        ("spiral", {"points_per_class": 30, "classes": 4}),
        ("shapes", {"size": 12, "count": 40, "classes": 3, "channels": 1}),
    ],
)
def test_declared_shape_and_classes_agree_with_the_data(name, params):
    ds = dataset(name, params)
    x, y = ds.load()
    assert x.shape[1:] == ds.sample_shape()
    assert x.dtype.kind == "f" and y.dtype == np.int64 and y.shape == (x.shape[0],)
    assert set(np.unique(y)) == set(range(ds.num_classes()))
    x2, y2 = dataset(name, params).load()
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_digits_are_sklearns_images_unchanged():
    # scikit-learn is the reference here, not a dlcore dependency: skipped in a bare dlcore install.
    load_digits = pytest.importorskip("sklearn.datasets").load_digits

    reference = load_digits()
    x, y = dataset("digits").load()
    assert x.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(x[:, 0], reference.images)
    np.testing.assert_array_equal(y, reference.target)
    assert x.min() == 0 and x.max() == 16


def test_spiral_matches_the_cs231n_construction():
    n, k, noise, seed = 50, 3, 0.2, 7
    rng = np.random.default_rng(seed)
    expected_x, expected_y = np.zeros((n * k, 2)), np.zeros(n * k, dtype=np.int64)
    for j in range(k):  # the CS231n loop, one class at a time
        ix = range(n * j, n * (j + 1))
        r = np.linspace(0.0, 1, n)
        t = np.linspace(j * 4, (j + 1) * 4, n) + rng.standard_normal(n) * noise
        expected_x[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        expected_y[ix] = j
    x, y = Spiral(points_per_class=n, classes=k, noise=noise, seed=seed).load()
    np.testing.assert_allclose(x, expected_x, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(y, expected_y)
    other, _ = Spiral(points_per_class=n, classes=k, noise=noise, seed=seed + 1).load()
    assert not np.allclose(x, other)


def test_shapes_are_balanced_seeded_and_look_like_their_class():
    ds = Shapes(size=24, count=200, noise=0.0, channels=3, seed=4)
    x, y = ds.load()
    assert x.shape == (200, 3, 24, 24) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [50] * 4
    assert not np.array_equal(
        x, Shapes(size=24, count=200, noise=0.0, channels=3, seed=5).load()[0]
    )
    # Without noise each image has two colours; the shape (brighter, by construction) fills a
    # known fraction of its bounding box: circle pi/4, square 1, triangle 1/2, cross 5/9.
    fill = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5, "cross": 5 / 9}
    for k, shape_name in enumerate(SHAPE_NAMES):
        ratios = []
        for image in x[y == k][:20]:
            mask = image[0] >= 0.6 - 1e-6
            assert mask.any() and not mask.all()
            assert all(len(np.unique(image[c])) == 2 for c in range(3))
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            ratios.append(mask.sum() / ((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)))
        assert abs(np.mean(ratios) - fill[shape_name]) < 0.08, (shape_name, np.mean(ratios))
    noisy, _ = Shapes(size=24, count=200, noise=0.1, channels=3, seed=4).load()
    assert 0.08 < np.std(noisy - x) < 0.12


def test_shapes_configuration_limits():
    with pytest.raises(ConfigError) as exc:
        Shapes(classes=5)
    assert exc.value.field == "classes"
    with pytest.raises(ConfigError):
        Shapes(count=3, classes=4)
    assert Shapes(classes=2, channels=1, size=8).sample_shape() == (1, 8, 8)


# --------------------------------------------------------------------------- npz


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    path.write_bytes(npz_bytes(**arrays))
    return str(path)


@pytest.mark.parametrize(
    "x_shape, sample_shape",
    [((12, 5), (5,)), ((12, 6, 7), (1, 6, 7)), ((12, 3, 4, 4), (3, 4, 4))],
)
def test_npz_loads_vectors_and_images(tmp_path, x_shape, sample_shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    y = np.arange(12) % 3
    path = write(tmp_path, x=x, y=y)
    ds = Npz(path=path)
    assert ds.sample_shape() == sample_shape and ds.num_classes() == 3
    loaded_x, loaded_y = ds.load()
    np.testing.assert_array_equal(loaded_x.reshape(x.shape), x)
    assert loaded_x.shape == (12,) + sample_shape and loaded_y.dtype == np.int64
    assert inspect_npz(path) == {
        "sample_shape": list(sample_shape),
        "num_classes": 3,
        "n_samples": 12,
    }
    assert inspect_npz(npz_bytes(x=x, y=y)) == inspect_npz(io.BytesIO(npz_bytes(x=x, y=y)))


def test_npz_describes_arrays_without_a_file_and_loads_only_a_path(tmp_path):
    ds = Npz(sample_shape=[1, 8, 8], num_classes=10)
    assert ds.sample_shape() == (1, 8, 8) and ds.num_classes() == 10
    with pytest.raises(ConfigError) as exc:
        ds.load()
    assert exc.value.field == "dataset.path" and "data=(x, y)" in exc.value.message
    for incomplete in ({"sample_shape": [1, 8, 8]}, {"num_classes": 10}, {}):
        with pytest.raises(ConfigError):
            Npz(**incomplete)
    with pytest.raises(ConfigError):
        Npz(dataset_id="abc", sample_shape=[1, 8, 8], num_classes=10)  # an upload is the service's idea
    path = write(tmp_path, x=np.zeros((4, 6)), y=np.array([0, 1, 0, 1]))
    with pytest.raises(ConfigError) as exc:
        Npz(path=path, sample_shape=[7]).load()
    assert exc.value.field == "dataset.x" and "(6,)" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        Npz(
            path=write(tmp_path, x=np.zeros((4, 6)), y=np.array([0, 1, 2, 1])), num_classes=2
        ).load()
    assert exc.value.field == "dataset.y" and "[0, 2)" in exc.value.message


GOOD_X = np.zeros((4, 3))
GOOD_Y = np.array([0, 1, 1, 0])


@pytest.mark.parametrize(
    "arrays, field, words",
    [
        (
            {"x": np.array([object(), 1, "a", None], dtype=object), "y": GOOD_Y},
            "dataset.x",
            "pickle",
        ),
        ({"x": GOOD_X, "y": np.array([0, 1, None, 0], dtype=object)}, "dataset.y", "pickle"),
        ({"x": np.array([[0.0, np.nan, 1.0]] * 4), "y": GOOD_Y}, "dataset.x", "NaN"),
        ({"x": np.array([[0.0, np.inf, 1.0]] * 4), "y": GOOD_Y}, "dataset.x", "infinite"),
        ({"x": np.zeros((4, 1, 2, 2, 2)), "y": GOOD_Y}, "dataset.x", "(N, D)"),
        ({"x": np.zeros(4), "y": GOOD_Y}, "dataset.x", "(N, D)"),
        ({"x": np.array([["a", "b", "c"]] * 4), "y": GOOD_Y}, "dataset.x", "numbers"),
        ({"x": GOOD_X, "y": np.array([0, 1, -1, 0])}, "dataset.y", "[0, C)"),
        ({"x": GOOD_X, "y": np.array([0, 1.5, 1, 0])}, "dataset.y", "integer"),
        ({"x": GOOD_X, "y": np.array([0, 1, 1])}, "dataset.y", "N = 4"),
        ({"x": GOOD_X, "y": GOOD_Y.reshape(4, 1)}, "dataset.y", "(N,)"),
        ({"x": GOOD_X}, "dataset.y", "no array 'y'"),
    ],
)
def test_npz_rejections_name_the_array_and_the_reason(tmp_path, arrays, field, words):
    for check in (
        lambda: inspect_npz(npz_bytes(**arrays)),
        lambda: Npz(path=write(tmp_path, **arrays)).load(),
    ):
        with pytest.raises(ConfigError) as exc:
            check()
        assert exc.value.field == field and words in exc.value.message, exc.value


def test_npz_rejects_files_that_are_not_npz():
    with pytest.raises(ConfigError) as exc:
        inspect_npz(b"this is not a zip file")
    assert exc.value.field == "dataset"
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    with pytest.raises(ConfigError):
        inspect_npz(buf.getvalue())


def test_npz_accepts_integer_pixels_and_whole_float_labels(tmp_path):
    path = write(
        tmp_path, x=np.arange(48, dtype=np.uint8).reshape(3, 4, 4), y=np.array([0.0, 1.0, 1.0])
    )
    x, y = Npz(path=path).load()
    assert x.shape == (3, 1, 4, 4) and x.dtype == np.float64 and y.tolist() == [0, 1, 1]


# --------------------------------------------------------------------------- split


def test_stratified_split_keeps_class_shares_and_is_seeded():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    train, val = stratified_split(y, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert np.intersect1d(train, val).size == 0 and np.union1d(train, val).tolist() == list(
        range(100)
    )
    assert np.bincount(y[val]).tolist() == [10, 6, 3, 1]
    again = stratified_split(y, 0.2, seed=3)
    np.testing.assert_array_equal(val, again[1])
    assert not np.array_equal(val, stratified_split(y, 0.2, seed=4)[1])


def test_stratified_split_puts_every_class_on_both_sides_when_possible():
    y = np.array([0] * 40 + [1] * 2 + [2] * 3)
    train, val = stratified_split(y, 0.1, seed=0)
    assert set(y[val]) == {0, 1, 2} and set(y[train]) == {0, 1, 2}
    rng = np.random.default_rng(0)
    for seed in range(5):
        labels = rng.integers(0, 5, size=60)
        train, val = stratified_split(labels, 0.25, seed)
        assert set(labels[train]) == set(labels) and set(labels[val]) == set(labels)
    single = np.array([0] * 10 + [1])
    train, val = stratified_split(single, 0.3, 0)
    assert 10 in train  # a one-sample class stays in training
    train, val = stratified_split(single, 0.0, 0)
    assert val.size == 0 and train.size == 11
    with pytest.raises(ValueError):
        stratified_split(single, 1.0, 0)
