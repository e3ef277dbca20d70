"""``dljobs plugins``, ``--json`` and ``--check`` over a registry built from explicit distributions."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid

import pytest
from click.testing import CliRunner

import dlcore.registry
from dlcore.registry import Registry
from dlcore.testing import plugin_distribution
from dljobs.cli import main

SOURCE = textwrap.dedent(
    '''
    from dlcore.component import Layer, ShapeInfo


    class Double(Layer):
        """out = 2 x: small enough for the kit to run in milliseconds."""

        name = "double"
        summary = "Doubles its input."
        example_shapes = ((4,), (2, 2, 3))

        def infer(self, in_shape):
            return ShapeInfo(out_shape=tuple(in_shape))

        def forward(self, x, training=False, rng=None):
            return 2 * x

        def backward(self, dout):
            return 2 * dout


    class KnownBad(Double):
        name = "known_bad"
        summary = "Declares its wrong gradient."
        expected_failures = {"check_gradients": "backward is knowingly off by a factor"}

        def backward(self, dout):
            return 3 * dout
    '''
)


@pytest.fixture
def use_registry(tmp_path, monkeypatch):
    """Make the CLI see a registry of in-memory distributions (restored after the test)."""
    module = f"h4_cli_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))

    # deferred: the search methods the listing also shows; none but the test's own here
    import dljobs.search.registry as methods

    monkeypatch.setattr(methods, "default_methods", lambda: methods.MethodRegistry([]))

    def install(*dists):
        reg = Registry.from_entry_points(source=[d(module) for d in dists])
        monkeypatch.setattr(dlcore.registry, "_default", reg)
        return reg

    yield install
    sys.modules.pop(module, None)


def good(module):
    return plugin_distribution("acme-double", "1.0.0", {"layers": {"double": f"{module}:Double"}})


def declared_bad(module):
    return plugin_distribution("acme-bad", "0.3", {"activations": {"known_bad": f"{module}:KnownBad"}})


def broken(module):
    return plugin_distribution("acme-broken", "0.0.1", {"losses": {"hinge2": "h4_missing_module:Hinge"}})


def rival(module):
    return plugin_distribution("rival", "2.0", {"layers": {"double": f"{module}:Double"}})


def test_listing_text_shows_kind_distribution_version_summary_and_errors(use_registry):
    use_registry(good, broken, rival)
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "layers (2)" in lines and "losses (1)" in lines and "datasets (0)" in lines
    double = [line for line in lines if line.strip().startswith("double")]
    assert len(double) == 2
    assert "acme-double 1.0.0" in double[0] and "Doubles its input." in double[0] and "'acme-double:double'" in double[0]
    assert "rival 2.0" in double[1] and "'rival:double'" in double[1]
    (hinge,) = [line for line in lines if line.strip().startswith("hinge2")]
    assert "acme-broken 0.0.1" in hinge and "ERROR ModuleNotFoundError" in hinge
    assert lines[-1] == "3 components, 1 with errors"


def test_json_is_exactly_the_registry_listing(use_registry):
    reg = use_registry(good, broken)
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {**reg.listing(), "search_methods": []}


def test_check_passes_and_declared_expected_failures_do_not_count(use_registry):
    use_registry(good, declared_bad)
    result = CliRunner().invoke(main, ["plugins", "--check"])
    assert result.exit_code == 0, result.output
    assert any(line.startswith("PASS") and "layers/double" in line and "check_gradients" in line for line in result.output.splitlines())
    assert any(line.startswith("XFAIL") and "activations/known_bad" in line for line in result.output.splitlines())
    assert "backward is knowingly off by a factor" in result.output
    assert "0 failed" in result.output.splitlines()[-1]


def test_check_exits_non_zero_on_a_plugin_that_fails_to_load(use_registry):
    use_registry(good, broken)
    result = CliRunner().invoke(main, ["plugins", "--check", "-q"])
    assert result.exit_code == 1
    assert "FAIL   losses/hinge2" in result.output and "h4_missing_module" in result.output
    assert "PASS" not in result.output  # -q prints only what did not pass
    assert "1 failed" in result.output.splitlines()[-1]


def test_check_only_filters_by_name(use_registry):
    use_registry(good, broken)
    result = CliRunner().invoke(main, ["plugins", "--check", "--only", "double"])
    assert result.exit_code == 0, result.output
    assert "hinge2" not in result.output


def test_check_runs_both_claims_of_a_contested_name_under_qualified_labels(use_registry):
    use_registry(good, rival)
    result = CliRunner().invoke(main, ["plugins", "--check"])
    assert result.exit_code == 0, result.output
    assert "layers/acme-double:double" in result.output and "layers/rival:double" in result.output


def test_listing_text_shows_a_plugin_for_another_api_version_with_both_versions(use_registry, monkeypatch):
    import dlcore

    # A module attribute read by load_entry: the running dlcore "moves on" to the next API version.
    monkeypatch.setattr(dlcore, "PLUGIN_API_VERSION", dlcore.PLUGIN_API_VERSION + 1)
    use_registry(good)
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    (double,) = [line for line in result.output.splitlines() if line.strip().startswith("double")]
    old, new = dlcore.PLUGIN_API_VERSION - 1, dlcore.PLUGIN_API_VERSION
    assert "acme-double 1.0.0" in double and "ERROR IncompatiblePlugin" in double
    assert f"targets plugin API version {old}" in double and f"implements plugin API version {new}" in double
    assert result.output.splitlines()[-1] == "1 components, 1 with errors"


def test_installed_listing_json_has_the_issue_shape_sorted_by_name(monkeypatch):
    """Must-show 1 on the real installed set (built-ins plus dlcore-extras), not a fixture registry."""
    from importlib.metadata import entry_points, version

    from dlcore.registry import GROUPS

    monkeypatch.setattr(dlcore.registry, "_default", Registry.from_entry_points())
    result = CliRunner().invoke(main, ["plugins", "--json"])
    text = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0 and text.exit_code == 0, result.output + text.output
    listing = json.loads(result.output)  # one JSON object, nothing else on stdout

    assert list(listing) == [*GROUPS, "search_methods"]
    declared = {(ep.group.removeprefix("dlcore."), ep.name) for g in GROUPS for ep in entry_points(group=f"dlcore.{g}")}
    declared |= {("search_methods", ep.name) for ep in entry_points(group="dljobs.search_methods")}
    listed = {(g, row["name"]) for g, rows in listing.items() for row in rows}
    assert listed == declared
    for group, rows in listing.items():
        names = [row["name"] for row in rows]
        assert names == sorted(names), f"{group} is not sorted by name: {names}"
        for row in rows:
            assert {"name", "distribution", "version", "summary", "params", "error"} <= set(row), row
            assert row["version"] == version(row["distribution"])
            if row["distribution"] not in ("dlcore", "dlcore-extras"):
                continue  # a developer's own plugin: listed, but not ours to vouch for
            assert row["error"] is None, row
            assert row["summary"] and "\n" not in row["summary"]
            assert row["params"]["type"] == "object" and "properties" in row["params"]
    gelu = {row["name"]: row for row in listing["activations"]}["gelu"]
    assert gelu["distribution"] == "dlcore-extras"
    conv = {row["name"]: row for row in listing["layers"]}["conv2d"]
    assert conv["distribution"] == "dlcore" and conv["params"]["properties"]["stride"]["minimum"] == 1
    assert conv["params"]["properties"]["stride"]["description"]

    # The text listing: a block per kind, one line per component with distribution, version and summary.
    lines = text.output.splitlines()
    for group, rows in listing.items():
        assert f"{group} ({len(rows)})" in lines
        for row in rows:
            assert any(
                line.split()[:3] == [row["name"], row["distribution"], row["version"]]
                and line.endswith(row["summary"] if row["error"] is None else row["error"])
                for line in lines
            ), f"no listing line for {group}/{row['name']}"
    errors = sum(row["error"] is not None for rows in listing.values() for row in rows)
    assert lines[-1] == f"{sum(len(rows) for rows in listing.values())} components, {errors} with errors"


def test_a_layer_and_an_activation_of_one_name_are_marked_as_contested(use_registry):
    def as_activation(module):
        return plugin_distribution("acme-act", "0.2", {"activations": {"double": f"{module}:Double"}})

    reg = use_registry(good, as_activation)
    assert reg.names("layers") == ["acme-double:double"] and reg.names("activations") == ["acme-act:double"]
    lines = CliRunner().invoke(main, ["plugins"]).output.splitlines()
    double = [line for line in lines if line.strip().startswith("double")]
    assert len(double) == 2
    assert all("[name claimed by 2 distributions" in line for line in double)
    assert "'acme-double:double'" in double[0] and "'acme-act:double'" in double[1]
    assert not any("ERROR" in line for line in double)


def test_check_options_without_check_are_usage_errors(use_registry):
    use_registry(good)
    for args in (["--only", "double"], ["-q"], ["--json", "--check"]):
        result = CliRunner().invoke(main, ["plugins", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "--check" in result.output
