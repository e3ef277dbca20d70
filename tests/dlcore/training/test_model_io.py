"""Model: raw-input predictions, pickle-free .npz round trip, no times or ids in the file."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from dlcore.errors import ConfigError
from dlcore.loading import load_model
from dlcore.model import read_npz
from dlcore.registry import default_registry
from dlcore.training import train

SPEC = {
    "dataset": {"type": "shapes", "size": 8, "count": 48, "channels": 1, "classes": 3, "seed": 2,
                "preprocess": [{"type": "mean_image"}, {"type": "std"}]},
    "model": {"layers": [
        {"type": "conv2d", "filters": 3, "size": 3, "pad": "same"},
        {"type": "spatial_batchnorm"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dropout", "p": 0.2},
        {"type": "affine", "units": 3},
    ]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 2, "batch_size": 8, "dtype": "float64"},
}


@pytest.fixture(scope="module")
def trained():
    return train(SPEC).model


@pytest.fixture(scope="module")
def raw_x():
    x, _ = default_registry().get("datasets", "shapes")({"size": 8, "count": 48, "channels": 1, "classes": 3, "seed": 2}).load()
    return x


def test_predict_applies_the_saved_preprocessing(trained, raw_x):
    proba = trained.predict_proba(raw_x)
    assert proba.shape == (48, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    labels = trained.predict(raw_x)
    assert labels.dtype == np.int64 and np.array_equal(labels, proba.argmax(axis=1))
    # by hand: preprocessing stats from the model, then the stack in evaluation mode
    x = raw_x.astype(np.float64)
    for p in trained.preprocessors:
        x = p.transform(x)
    from dlcore.layout import to_internal

    np.testing.assert_array_equal(trained.net.forward(to_internal(x), training=False), trained.scores(raw_x))
    assert trained.predict(raw_x[0]).shape == (1,)  # one sample without the batch axis


def test_wrong_input_shape_names_the_expected_shape(trained):
    with pytest.raises(ConfigError, match=r"\[1, 8, 8\]"):
        trained.predict(np.zeros((2, 3, 8, 8)))


def test_save_load_round_trip_is_exact(trained, raw_x, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    loaded = load_model(path)
    assert loaded.sample_shape == (1, 8, 8) and loaded.num_classes == 3
    assert loaded.spec == trained.spec and loaded.best_epoch == trained.best_epoch
    np.testing.assert_array_equal(loaded.predict_proba(raw_x), trained.predict_proba(raw_x))
    assert load_model(trained.to_bytes()).to_bytes() == trained.to_bytes()
    buf = io.BytesIO()
    trained.save(buf)
    assert load_model(buf.getvalue()).to_bytes() == trained.to_bytes()


def test_file_is_pickle_free_and_timeless(trained):
    data = trained.to_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert not any(a.dtype.hasobject for a in arrays.values())
    assert {"format_version", "spec_json", "sample_shape", "num_classes"} <= set(arrays)
    assert any(k.startswith("param/") for k in arrays) and any(k.startswith("state/") for k in arrays)
    assert any(k.startswith("preprocess/0/") for k in arrays)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert set(read_npz(data)) == set(arrays)


def test_load_refuses_unknown_versions(trained):
    from dlcore.model import write_npz

    arrays = trained.arrays()
    arrays["format_version"] = np.asarray(99)
    with pytest.raises(ValueError, match="format_version 99"):
        load_model(write_npz(arrays))


def test_a_model_trained_from_an_npz_path_loads_without_the_file(tmp_path):
    from dlcore.errors import SpecError
    from dlcore.spec import validate

    x, y = default_registry().get("datasets", "spiral")({"points_per_class": 20, "classes": 3}).load()
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    spec = {"dataset": {"type": "npz", "path": str(path)}, "model": {"architecture": "mlp", "hidden": [8]},
            "training": {"epochs": 1, "batch_size": 16}}
    normalized = validate(spec)
    assert normalized["dataset"]["sample_shape"] == [2] and normalized["dataset"]["num_classes"] == 3  # read once, written down
    model = train(spec).model
    expected = model.predict_proba(x)
    data = model.to_bytes()
    path.unlink()  # the model is moved to a machine without the data
    loaded = load_model(data)
    assert loaded.sample_shape == (2,) and loaded.num_classes == 3
    np.testing.assert_array_equal(loaded.predict_proba(x), expected)
    with pytest.raises(SpecError) as info:  # validating the original spec needs the file
        validate(spec)
    (error,) = info.value.errors
    assert error.field == "dataset" and "mine.npz" in error.message
