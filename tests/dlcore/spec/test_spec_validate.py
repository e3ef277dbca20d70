"""validate(): defaults, every problem listed with its field path, shape errors before any data."""

from __future__ import annotations

import copy

import pytest

from dlcore.errors import SpecError
from dlcore.registry import default_registry
from dlcore.spec import validate

MLP = {
    "dataset": {"type": "digits"},
    "model": {"layers": [{"type": "affine", "units": 16}, {"type": "relu"}, {"type": "affine", "units": 10}]},
}


def errors_of(spec) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate(spec)
    return {e.field: e.message for e in info.value.errors}


def test_defaults_are_filled_and_input_is_not_modified():
    spec = copy.deepcopy(MLP)
    out = validate(spec)
    assert spec == MLP
    assert out["spec_version"] == 1
    assert out["training"]["epochs"] >= 1 and out["training"]["dtype"] == "float32"
    assert out["training"]["checkpoint_every"] is None
    assert "max_attempts" not in out["training"] and "warm_start" not in out["training"]  # the service's, not dlcore's
    assert out["dataset"]["val_fraction"] == 0.2 and out["dataset"]["seed"] == 0
    assert out["dataset"]["preprocess"] == [] and out["dataset"]["augment"] == []
    for key in ("init", "loss", "optimizer", "schedule"):
        assert isinstance(out[key]["type"], str)
    # every default the optimizer declares is written out
    assert set(default_registry().get("optimizers", out["optimizer"]["type"]).Config.model_fields) <= set(out["optimizer"])
    assert out["diagnostics"]["nan_factor"] == 100.0


def test_normalized_spec_is_a_fixed_point():
    once = validate(MLP)
    assert validate(once.to_dict()) == once  # validated again from its plain form: the same spec


def test_a_validated_spec_is_trusted_read_only_and_copied_out_plain():
    import sys
    from unittest import mock

    from dlcore.spec import ValidatedSpec, build, infer

    validate_module = sys.modules["dlcore.spec.validate"]  # the package's "validate" is the function
    once = validate(MLP)
    assert isinstance(once, ValidatedSpec) and once.sample_shape == (1, 8, 8) and once.num_classes == 10
    assert len(once.rows) == len(once.layer_entries) == len(MLP["model"]["layers"])
    with mock.patch.object(validate_module, "_check", wraps=validate_module._check) as spy:
        assert validate(once) is once
        infer(once)
        build(once)
        assert spy.call_count == 0  # infer and build trust it
        infer(once.to_dict())
        assert spy.call_count == 1  # a plain mapping is validated first
    with pytest.raises(TypeError):
        once["name"] = "other"  # read-only: an edit goes through to_dict and validation again
    plain = once.to_dict()
    plain["training"]["epochs"] = 99
    assert type(plain) is dict and once["training"]["epochs"] != 99


def test_every_problem_is_listed_with_its_field():
    spec = copy.deepcopy(MLP)
    spec["colour"] = "blue"
    spec["optimizer"] = {"type": "momentum", "lr": -1}
    spec["training"] = {"epochs": 0, "bogus": 1}
    spec["loss"] = {"type": "hinge"}
    spec["regularization"] = [{"type": "l2", "strength": -0.1}]
    spec["model"]["layers"][0] = {"type": "gelu_xyz"}
    errs = errors_of(spec)
    assert "unknown key" in errs["colour"]
    assert "lr" in errs["optimizer.lr"] or "greater than 0" in errs["optimizer.lr"]
    assert "training.epochs" in errs and "training.bogus" in errs
    assert "hinge" in errs["loss.type"]
    assert "regularization[0].strength" in errs
    assert "gelu_xyz" in errs["model.layers[0].type"]


def test_unknown_layer_parameter_names_the_parameter():
    spec = copy.deepcopy(MLP)
    spec["model"]["layers"][0] = {"type": "affine", "units": 16, "size": 3}
    errs = errors_of(spec)
    assert "model.layers[0].size" in errs


def test_impossible_conv_is_rejected_with_the_formula_before_loading_data(monkeypatch):
    cls = default_registry().get("datasets", "shapes")

    def no_loading(self):
        raise AssertionError("validate must not load data")

    monkeypatch.setattr(cls, "load", no_loading)
    spec = {
        "dataset": {"type": "shapes", "size": 16, "count": 40},
        "model": {
            "layers": [
                {"type": "conv2d", "filters": 4, "size": 5, "stride": 2},
                {"type": "relu"},
                {"type": "flatten"},
                {"type": "affine", "units": 4},
            ]
        },
    }
    errs = errors_of(spec)
    (field, message), = errs.items()
    assert field.startswith("model.layers[0].")
    assert "(16 - 5 + 2*0)/2 + 1 = 6.5" in message


def test_last_layer_must_give_one_score_per_class():
    spec = copy.deepcopy(MLP)
    spec["model"]["layers"][-1] = {"type": "affine", "units": 3}
    errs = errors_of(spec)
    assert any("10 classes" in m for m in errs.values())


def test_model_and_dataset_shapes():
    errs = errors_of({"dataset": {"type": "nope"}, "model": {"layers": []}})
    assert "dataset.type" in errs and "model.layers" in errs
    errs = errors_of({"model": {"layers": [{"type": "affine", "units": 2}]}})
    assert "dataset" in errs


def test_augmentation_needs_images_and_known_names():
    spec = copy.deepcopy(MLP)
    spec["dataset"] = {"type": "spiral", "augment": [{"type": "flip"}]}
    spec["model"]["layers"][-1]["units"] = 3
    errs = errors_of(spec)
    assert "images" in errs["dataset.augment[0]"]
    spec = copy.deepcopy(MLP)
    spec["dataset"]["augment"] = [{"type": "rotate"}]
    errs = errors_of(spec)
    assert any(f.startswith("dataset.augment[0]") and "rotate" in m for f, m in errs.items())


def test_training_sections():
    spec = copy.deepcopy(MLP)
    spec["training"] = {"dtype": "float16", "early_stopping": {"metric": "val_accuracy", "patience": 0}}
    errs = errors_of(spec)
    assert "training.dtype" in errs
    assert "training.early_stopping.patience" in errs
    spec["training"] = {"dtype": "float64", "early_stopping": {"metric": "val_loss", "patience": 2}}
    out = validate(spec)
    assert out["training"]["early_stopping"]["patience"] == 2


def test_not_an_object():
    with pytest.raises(SpecError) as info:
        validate([1, 2])
    assert info.value.errors[0].field == "body"


def test_cosine_t_max_defaults_to_the_runs_epochs():
    spec = copy.deepcopy(MLP)
    spec["schedule"] = {"type": "cosine", "min_factor": 0.1}
    spec["training"] = {"epochs": 7}
    out = validate(spec)
    assert out["schedule"]["t_max"] == 7 and out["schedule"]["min_factor"] == 0.1
    assert validate(out.to_dict()) == out
    spec["schedule"]["t_max"] = 3  # an explicit value is kept
    assert validate(spec)["schedule"]["t_max"] == 3
    del spec["schedule"]["t_max"], spec["training"]  # the default run length
    from dlcore.spec.sections import Training

    assert validate(spec)["schedule"]["t_max"] == Training.model_fields["epochs"].default
    spec["training"] = {"epochs": 0}  # a bad run length is the only error, not a missing t_max too
    assert set(errors_of(spec)) == {"training.epochs"}
    spec["training"] = {"epochs": 7}
    spec["schedule"]["t_max"] = 0  # the schedule's own bound still applies
    assert "schedule.t_max" in errors_of(spec)


@pytest.mark.parametrize("dataset", [
    {"type": "digits"},
    {"type": "spiral", "classes": 3},
    {"type": "shapes", "size": 16, "count": 40},
    {"type": "npz", "sample_shape": [1, 8, 8], "num_classes": 3},
])
def test_every_dataset_validates_and_infers_without_loading(monkeypatch, dataset):
    from dlcore.spec import infer

    cls = default_registry().get("datasets", dataset["type"])

    def no_loading(self):
        raise AssertionError("validate and infer must not load data")

    monkeypatch.setattr(cls, "load", no_loading)
    table = infer({"dataset": dataset, "model": {"architecture": "mlp"}})
    ds = cls({k: v for k, v in dataset.items() if k != "type"})
    assert table["input_shape"] == list(ds.sample_shape()) and table["num_classes"] == ds.num_classes()
    assert table["layers"][-1]["output_shape"] == [ds.num_classes()]


def test_a_misspelled_section_suggests_the_key_meant():
    spec = copy.deepcopy(MLP)
    spec["optimzer"] = spec.pop("optimizer", {"type": "sgd"})
    spec["model"] = {"layrs": spec["model"]["layers"]}
    errs = errors_of(spec)
    assert "unknown key, did you mean 'optimizer'?" in errs["optimzer"]
    assert "unknown key, did you mean 'layers'?" in errs["model.layrs"]
    spec = copy.deepcopy(MLP)
    spec["zzz"] = 1
    assert "did you mean" not in errors_of(spec)["zzz"]
