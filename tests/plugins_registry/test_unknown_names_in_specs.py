"""Must-show 2 end to end, and must-show 3 as a spec sees it.

With dlcore-extras installed (``make install`` installs it), a spec naming
``gelu`` and ``layernorm`` validates, trains and saves through ``dljobs
validate`` / ``dljobs train``, and the saved model loads back. With a registry
that excludes dlcore-extras, the same spec is refused field by field:
``unknown layer or activation 'gelu'`` (a single-kind field names its kind:
``unknown optimizer 'adamw'``), the installed names, and a hint to install a
plugin; and the saved model no longer loads. A contested name and a plugin
targeting another API version are refused inside a spec with the registry's
messages; the qualified ``distribution:name`` trains.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pytest
from click.testing import CliRunner

import dlcore.registry
from dlcore import PLUGIN_API_VERSION
from dlcore.errors import ConfigError, SpecError
from dlcore.loading import load_model
from dlcore.registry import Registry, default_registry
from dlcore.spec.validate import validate
from dlcore.testing import plugin_distribution
from dlcore.training.trainer import train
from dljobs.cli import main

SPEC = {
    "dataset": {"type": "spiral"},
    "model": {
        "layers": [
            {"type": "affine", "units": 32},
            {"type": "layernorm"},
            {"type": "gelu"},
            {"type": "affine", "units": 3},
        ]
    },
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 30, "batch_size": 32, "seed": 0, "dtype": "float64"},
}


@pytest.fixture(scope="module")
def extras_version() -> str:
    try:
        return version("dlcore-extras")
    except PackageNotFoundError:
        pytest.fail("dlcore-extras is not installed: run `make install` (it installs plugins/*)")


def without_extras() -> Registry:
    return Registry.from_entry_points(exclude=["dlcore_extras"])  # PEP 503: the same as dlcore-extras


def test_with_dlcore_extras_a_model_naming_gelu_and_layernorm_validates_trains_and_saves(
    tmp_path, monkeypatch, extras_version
):
    monkeypatch.setattr(dlcore.registry, "_default", Registry.from_entry_points())
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(SPEC))
    runner = CliRunner()

    checked = runner.invoke(main, ["validate", str(spec_path), "--json"])
    assert checked.exit_code == 0, checked.output
    assert [row["type"] for row in json.loads(checked.output)["layers"]] == ["affine", "layernorm", "gelu", "affine"]

    model_path = tmp_path / "model.npz"
    trained = runner.invoke(main, ["train", str(spec_path), "--json", "--quiet", "--out", str(model_path)])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.output.splitlines()[-1])
    assert metrics["epochs"] == 30 and not metrics["stopped"]
    assert metrics["val_accuracy"] > 0.9  # spiral, 3 classes: chance is 1/3

    model = load_model(model_path.read_bytes())
    built = [type(layer) for layer in model.net.children]
    assert [(cls.__module__, cls.__name__) for cls in built[1:3]] == [
        ("dlcore_extras.layers.layernorm", "LayerNorm"),
        ("dlcore_extras.activations.gelu", "GELU"),
    ]
    rows = {row["name"]: row for group in ("layers", "activations") for row in default_registry().listing()[group]}
    assert (rows["gelu"]["distribution"], rows["gelu"]["version"]) == ("dlcore-extras", extras_version)
    assert (rows["layernorm"]["distribution"], rows["layernorm"]["version"]) == ("dlcore-extras", extras_version)

    # The saved model needs the plugin too: without it, loading names the missing component.
    with pytest.raises((ConfigError, SpecError), match="unknown layer or activation '(layernorm|gelu)'"):
        load_model(model_path.read_bytes(), registry=without_extras())


def test_without_dlcore_extras_the_spec_is_refused_by_kind_with_installed_names_and_a_hint():
    spec = {**SPEC, "optimizer": {"type": "adamw", "lr": 0.01}}
    with pytest.raises(SpecError) as exc:
        validate(spec, without_extras())
    errors = {e.field: e.message for e in exc.value.errors}
    assert sorted(errors) == ["model.layers[1].type", "model.layers[2].type", "optimizer.type"]

    gelu = errors["model.layers[2].type"]
    assert gelu.startswith("unknown layer or activation 'gelu'")
    installed = gelu.split("installed layers and activations: ")[1].split(";")[0].split(", ")
    assert installed == sorted(installed) and {"affine", "relu", "elu", "conv2d"} <= set(installed)
    assert not {"gelu", "layernorm", "silu"} & set(installed)
    assert gelu.endswith("install a plugin that provides it (pip install <plugin>); see 'dljobs plugins'")
    assert errors["model.layers[1].type"].startswith("unknown layer or activation 'layernorm'")

    adamw = errors["optimizer.type"]
    assert adamw.startswith("unknown optimizer 'adamw'")
    assert "installed optimizers: adagrad, adam, momentum, nesterov, rmsprop, sgd;" in adamw
    assert "install a plugin that provides it" in adamw

    # The trainer validates with the same registry: it refuses before loading any data.
    with pytest.raises(SpecError, match="unknown layer or activation 'gelu'"):
        train(SPEC, registry=without_extras())


def test_without_dlcore_extras_dljobs_validate_prints_the_refusal_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.setattr(dlcore.registry, "_default", without_extras())
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(SPEC))
    result = CliRunner().invoke(main, ["validate", str(spec_path)])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("error: model.layers[2].type: unknown layer or activation 'gelu'") for line in lines)
    assert any(line.startswith("error: model.layers[1].type: unknown layer or activation 'layernorm'") for line in lines)


def registry_with(*dists) -> Registry:
    """The installed registry plus in-memory distributions (nothing global changes)."""
    return Registry(entries=[*Registry.from_entry_points().entries(), *Registry.from_entry_points(source=dists).entries()])


def test_a_contested_name_in_a_spec_names_both_distributions_and_the_qualified_form_trains(extras_version):
    rival = plugin_distribution("rival-gelu", "2.0", {"layers": {"gelu": "dlcore_extras.activations.gelu:GELU"}})
    registry = registry_with(rival)
    with pytest.raises(SpecError) as exc:
        validate(SPEC, registry)
    (error,) = exc.value.errors
    assert error.field == "model.layers[2].type"
    assert f"dlcore-extras {extras_version}" in error.message and "rival-gelu 2.0" in error.message
    assert "'dlcore-extras:gelu'" in error.message and "'rival-gelu:gelu'" in error.message

    layers = [dict(e) for e in SPEC["model"]["layers"]]
    layers[2]["type"] = "dlcore-extras:gelu"
    spec = {**SPEC, "model": {"layers": layers}, "training": {**SPEC["training"], "epochs": 2}}
    validate(spec, registry)
    result = train(spec, registry=registry)
    assert np.isfinite(result.metrics["train_loss"]) and type(result.model.net.children[2]).__name__ == "GELU"


def test_a_plugin_for_another_api_version_is_refused_in_a_spec_naming_both_versions(tmp_path, monkeypatch):
    (tmp_path / "h3_future_gelu.py").write_text(
        "from dlcore_extras.activations.gelu import GELU\n\n"
        f"class FutureGELU(GELU):\n    api_version = {PLUGIN_API_VERSION + 1}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    future = plugin_distribution("future-gelu", "3.0", {"activations": {"fgelu": "h3_future_gelu:FutureGELU"}})
    layers = [dict(e) for e in SPEC["model"]["layers"]]
    layers[2]["type"] = "fgelu"
    with pytest.raises(SpecError) as exc:
        validate({**SPEC, "model": {"layers": layers}}, registry_with(future))
    (error,) = exc.value.errors
    assert error.field == "model.layers[2].type"
    assert "future-gelu 3.0" in error.message
    assert f"targets plugin API version {PLUGIN_API_VERSION + 1}" in error.message
    assert f"implements plugin API version {PLUGIN_API_VERSION}" in error.message
