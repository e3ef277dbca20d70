"""job_spec_json_schema(): composed from every component's Config, and it accepts real specs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from dlcore.registry import default_registry
from dlcore.spec import job_spec_json_schema, validate

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.json"))


@pytest.fixture(scope="module")
def schema():
    return job_spec_json_schema()


def test_schema_is_valid_and_names_every_component(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    reg = default_registry()
    for group in ("layers", "activations", "optimizers", "losses", "datasets"):
        for name in reg.names(group):
            assert f'"const": "{name}"' in text, (group, name)
    assert set(schema["properties"]) == {
        "spec_version", "name", "dataset", "model", "init", "loss", "regularization",
        "optimizer", "schedule", "training", "diagnostics",
    }


def test_schema_carries_component_bounds(schema):
    lr = schema["$defs"]["optimizers.momentum"]["properties"]["lr"]
    assert lr.get("exclusiveMinimum") == 0 or lr.get("minimum", -1) >= 0


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_and_their_normal_form_match_the_schema(schema, path):
    spec = json.loads(path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(spec)
    validator.validate(validate(spec).to_dict())


def test_schema_rejects_unknown_top_level_keys(schema):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"dataset": {"type": "digits"}, "model": {"layers": []}, "extra": 1}, schema)


def test_schema_lets_cosine_leave_t_max_to_the_run(schema):
    cosine = schema["$defs"]["schedules.cosine"]
    assert "t_max" in cosine["properties"] and "t_max" not in cosine["required"]
    assert "training.epochs" in cosine["properties"]["t_max"]["description"]
    spec = {"dataset": {"type": "digits"}, "model": {"architecture": "mlp"}, "schedule": {"type": "cosine"}}
    jsonschema.Draft202012Validator(schema).validate(spec)
    assert validate(spec)["schedule"]["t_max"] == validate(spec)["training"]["epochs"]
