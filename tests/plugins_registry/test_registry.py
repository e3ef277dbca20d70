"""The registry built from explicit entry-point sources: listing, load errors, collisions, API versions.

Every registry here is built from in-memory distributions whose entry points name
small plugin modules written to a temporary directory; nothing global changes.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from importlib.metadata import EntryPoint

import pytest

from dlcore import PLUGIN_API_VERSION
from dlcore.errors import ConfigError
from dlcore.registry import GROUPS, Registry, default_registry
from dlcore.spec.schema import job_spec_json_schema
from dlcore.testing import plugin_distribution

PLUGIN_SOURCE = textwrap.dedent(
    '''
    import numpy as np
    from pydantic import Field

    from dlcore.component import Layer, Optimizer, ShapeInfo
    from dlcore.config import Config


    class SwishConfig(Config):
        beta: float = Field(1.0, gt=0, description="Slope of the sigmoid gate.")


    class Swish(Layer):
        name = "swish"
        summary = "x * sigmoid(beta x)."
        Config = SwishConfig

        def infer(self, in_shape):
            return ShapeInfo(out_shape=tuple(in_shape))


    class OtherSwish(Swish):
        summary = "Another distribution's swish."


    class FromTheFuture(Swish):
        name = "future"
        api_version = PLUGIN_API_VERSION + 1


    class NotAComponent:
        name = "plain"


    class BrokenSchemaConfig(Config):
        @classmethod
        def model_json_schema(cls, *args, **kwargs):
            raise ValueError("no schema for you")


    class BrokenSchema(Swish):
        name = "broken_schema"
        Config = BrokenSchemaConfig


    class Lion(Optimizer):
        name = "lion"
        summary = "Sign of an interpolated momentum."
    '''
).replace("PLUGIN_API_VERSION", str(PLUGIN_API_VERSION))


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """An importable module of plugin classes, and a module that raises when imported."""
    name = f"h4_fake_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_SOURCE)
    (tmp_path / f"{name}_broken.py").write_text("raise RuntimeError('boom while importing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in (name, f"{name}_broken"):
        sys.modules.pop(mod, None)


def registry_of(*dists) -> Registry:
    return Registry.from_entry_points(source=list(dists))


def test_listing_has_every_group_with_rows_sorted_and_json_schema(plugin_module):
    dist = plugin_distribution(
        "acme-layers", "1.2.3", {"layers": {"swish": f"{plugin_module}:Swish"}, "optimizers": {"lion": f"{plugin_module}:Lion"}}
    )
    other = plugin_distribution("zeta-layers", "0.1", {"layers": {"aswish": f"{plugin_module}:OtherSwish"}})
    listing = registry_of(dist, other).listing()

    assert list(listing) == list(GROUPS)
    assert [row["name"] for row in listing["layers"]] == ["aswish", "swish"]
    row = listing["layers"][1]
    assert set(row) == {"name", "distribution", "version", "summary", "params", "api_version", "error"}
    assert (row["distribution"], row["version"], row["error"]) == ("acme-layers", "1.2.3", None)
    assert row["summary"] == "x * sigmoid(beta x)."
    assert row["api_version"] == PLUGIN_API_VERSION
    beta = row["params"]["properties"]["beta"]
    assert beta["default"] == 1.0 and beta["exclusiveMinimum"] == 0 and beta["description"]
    assert [r["name"] for r in listing["optimizers"]] == ["lion"]
    assert listing["datasets"] == []
    assert json.loads(json.dumps(listing)) == listing


def test_plugin_that_fails_to_import_is_listed_and_breaks_nothing_else(plugin_module):
    dist = plugin_distribution(
        "acme-layers",
        "1.0",
        {
            "layers": {
                "swish": f"{plugin_module}:Swish",
                "broken": f"{plugin_module}_broken:Thing",
                "missing": "h4_no_such_module_anywhere:Thing",
                "plain": f"{plugin_module}:NotAComponent",
                "broken_schema": f"{plugin_module}:BrokenSchema",
            }
        },
    )
    reg = registry_of(dist)
    rows = {row["name"]: row for row in reg.listing()["layers"]}

    assert rows["broken"]["error"] == "RuntimeError: boom while importing"
    assert rows["missing"]["error"].startswith("ModuleNotFoundError: No module named 'h4_no_such_module_anywhere'")
    assert rows["plain"]["error"].startswith("TypeError:") and "Layer subclass" in rows["plain"]["error"]
    assert rows["broken"]["distribution"] == "acme-layers" and rows["broken"]["params"] is None
    # A schema that cannot export would break the job spec's JSON Schema and OpenAPI: refused at load.
    assert rows["broken_schema"]["error"] == "ValueError: params schema does not export: no schema for you"
    assert rows["broken_schema"]["params"] is None
    assert [e.name for e in reg.errors()] == ["broken", "broken_schema", "missing", "plain"]
    assert "swish" in json.dumps(job_spec_json_schema(reg)) and "broken_schema" not in json.dumps(job_spec_json_schema(reg))
    assert rows["swish"]["error"] is None
    assert reg.get_layer("swish").__name__ == "Swish"
    assert reg.names("layers") == ["swish"]
    assert reg.names("layers", include_errors=True) == ["broken", "broken_schema", "missing", "plain", "swish"]
    with pytest.raises(ConfigError) as exc:
        reg.get_layer("broken")
    assert exc.value.field == "type"
    assert "acme-layers 1.0" in exc.value.message and "RuntimeError: boom while importing" in exc.value.message


def test_two_distributions_claiming_one_name_neither_wins(plugin_module):
    a = plugin_distribution("acme-layers", "1.0", {"layers": {"swish": f"{plugin_module}:Swish"}})
    b = plugin_distribution("other_layers", "2.5", {"activations": {"swish": f"{plugin_module}:OtherSwish"}})
    c = plugin_distribution("third", "0.1", {"layers": {"swish": f"{plugin_module}:OtherSwish"}})
    reg = registry_of(a, b, c)

    rows = [r for r in reg.listing()["layers"] if r["name"] == "swish"]
    assert [(r["distribution"], r["version"]) for r in rows] == [("acme-layers", "1.0"), ("third", "0.1")]
    # names() offers only what get() accepts: the qualified forms of a contested name.
    assert reg.names("layers") == ["acme-layers:swish", "third:swish"]
    assert reg.names("layers", include_errors=True) == ["swish"]
    # A layer stack takes layers and activations: other_layers' activation contends too.
    assert reg.names("activations") == ["other_layers:swish"]
    assert [e.distribution for e in reg.claims("activations", "swish")] == ["acme-layers", "third", "other_layers"]

    with pytest.raises(ConfigError) as exc:
        reg.get_layer("swish")  # layers and activations together: three claims
    msg = exc.value.message
    assert exc.value.field == "type"
    assert "acme-layers 1.0" in msg and "other_layers 2.5" in msg and "third 0.1" in msg
    assert "'acme-layers:swish'" in msg

    with pytest.raises(ConfigError, match="acme-layers 1.0.*third 0.1"):
        reg.get("layers", "swish")

    assert reg.get_layer("acme-layers:swish").__name__ == "Swish"
    assert reg.get_layer("other-layers:swish").__name__ == "OtherSwish"  # PEP 503 normalized
    assert reg.get("layers", "third:swish").__name__ == "OtherSwish"
    with pytest.raises(ConfigError, match="no layer 'swish' from distribution 'nobody'"):
        reg.get("layers", "nobody:swish")


def test_same_distribution_seen_twice_is_one_claim(plugin_module):
    a = plugin_distribution("acme-layers", "1.0", {"layers": {"swish": f"{plugin_module}:Swish"}})
    again = plugin_distribution("Acme_Layers", "1.0", {"layers": {"swish": f"{plugin_module}:Swish"}})
    reg = registry_of(a, again)
    assert len(reg.listing()["layers"]) == 1
    assert reg.get_layer("swish").__name__ == "Swish"


def test_incompatible_plugin_api_version_is_refused_naming_both_versions(plugin_module):
    dist = plugin_distribution("futurist", "9.0", {"layers": {"future": f"{plugin_module}:FromTheFuture"}})
    reg = registry_of(dist)
    (row,) = reg.listing()["layers"]
    assert row["api_version"] == PLUGIN_API_VERSION + 1
    assert f"plugin API version {PLUGIN_API_VERSION + 1}" in row["error"]
    assert f"plugin API version {PLUGIN_API_VERSION}" in row["error"].split("implements")[1]
    with pytest.raises(ConfigError) as exc:
        reg.get_layer("future")
    assert f"version {PLUGIN_API_VERSION + 1}" in exc.value.message and f"version {PLUGIN_API_VERSION}" in exc.value.message
    assert "futurist 9.0" in exc.value.message


def test_unknown_names_say_the_kind_the_installed_names_and_how_to_get_more(plugin_module):
    dist = plugin_distribution(
        "acme-layers", "1.0", {"layers": {"swish": f"{plugin_module}:Swish"}, "optimizers": {"lion": f"{plugin_module}:Lion"}}
    )
    reg = registry_of(dist)

    with pytest.raises(ConfigError) as exc:
        reg.get_layer("gelu")
    assert exc.value.field == "type"
    assert exc.value.message.startswith("unknown layer or activation 'gelu'")
    assert "installed layers and activations: swish" in exc.value.message
    assert "pip install" in exc.value.message and "dljobs plugins" in exc.value.message

    with pytest.raises(ConfigError) as exc:
        reg.get("optimizers", "adamw")
    assert exc.value.message.startswith("unknown optimizer 'adamw'")
    assert "installed optimizers: lion" in exc.value.message

    with pytest.raises(ConfigError, match="'lion' is an optimizer, not a layer or activation"):
        reg.get_layer("lion")
    with pytest.raises(ConfigError, match="did you mean 'swish'"):
        reg.get_layer("swisH")


def test_bare_entry_points_and_class_mappings_also_build_registries(plugin_module):
    bare = EntryPoint("swish", f"{plugin_module}:Swish", "dlcore.layers")
    unrelated = EntryPoint("x", "os:path", "console_scripts")
    reg = Registry.from_entry_points(source=[bare, unrelated])
    (row,) = reg.listing()["layers"]
    assert row["distribution"] is None and row["error"] is None
    assert sum(len(v) for v in reg.listing().values()) == 1

    cls = reg.get_layer("swish")
    direct = Registry({"layers": {"swish": cls}, "optimizer": {}})
    assert direct.get("layer", "swish") is cls and direct.get("dlcore.layers", "swish") is cls
    assert direct.names("layers") == ["swish"]


def test_default_registry_reads_the_installed_built_ins():
    reg = default_registry()
    rows = {row["name"]: row for row in reg.listing()["layers"]}
    assert rows["affine"]["distribution"] == "dlcore"
    assert default_registry() is reg
    # A fresh registry from the same source is a different object; the default is not touched.
    assert Registry.from_entry_points() is not default_registry()
