"""dljobs train refuses output paths it cannot write before training; a spec nested too deep is an error on the file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dljobs.cli import main

TINY = {
    "dataset": {"type": "spiral", "points_per_class": 10},
    "model": {"architecture": "mlp", "width": 4},
    "training": {"epochs": 1},
}


@pytest.mark.parametrize("option", ["--out", "--checkpoint"])
def test_an_output_in_a_missing_folder_fails_before_training(tmp_path, option):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(TINY))
    result = CliRunner().invoke(main, ["train", str(spec), "--quiet", option, str(tmp_path / "no" / "m.npz")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert option in result.output and "does not exist" in result.output
    assert "epoch" not in result.output  # nothing was trained


def test_a_spec_nested_too_deep_for_json_is_an_error_on_the_file(tmp_path):
    spec = tmp_path / "deep.json"
    spec.write_text("[" * 100_000 + "]" * 100_000)
    for command in ("validate", "train"):
        result = CliRunner().invoke(main, [command, "--json", str(spec)])
        assert result.exit_code == 2, result.output
        assert json.loads(result.stdout.splitlines()[-1])["errors"][0]["field"] == str(spec)
