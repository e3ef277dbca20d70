"""dljobs plugins --check --only NAME with a NAME that matches nothing fails instead of passing zero checks."""

from __future__ import annotations

from click.testing import CliRunner

from dljobs.cli import main


def test_only_matching_nothing_is_an_error():
    result = CliRunner().invoke(main, ["plugins", "--check", "--only", "no-such-component-xyz"])
    assert result.exit_code == 2
    assert "matches no installed component" in result.output
    assert "0 passed" not in result.output


def test_only_matching_something_still_runs_its_checks():
    result = CliRunner().invoke(main, ["plugins", "--check", "--only", "sigmoid", "-q"])
    assert result.exit_code == 0, result.output
    assert "failed" in result.output.splitlines()[-1]
