"""Built-ins are plugins like any other: declared as entry points, never registered by importing a module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from dlcore.registry import GROUPS

#: Concrete Component subclasses that are not nameable on purpose: building blocks inside other layers,
#: and augmentations (a closed list in dlcore.augmentation, not a plugin group).
NOT_COMPONENTS = {
    "dlcore.layers.residual:Projection",
    "dlcore.layers.sequential:Container",
    "dlcore.layers.sequential:Sequential",
    "dlcore.augmentation.base:Augmentation",
    "dlcore.augmentation.crop:Crop",
    "dlcore.augmentation.flip:Flip",
}

PROBE = textwrap.dedent(
    """
    import importlib, inspect, json, pkgutil
    from importlib.metadata import entry_points

    import dlcore
    import dlcore.registry
    from dlcore.component import Component

    groups = json.loads(__import__("sys").argv[1])
    classes = {}
    for info in pkgutil.walk_packages(dlcore.__path__, "dlcore."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, Component) and obj.__module__ == module.__name__
                    and not obj.__name__.startswith("_") and obj.__module__ != "dlcore.component"):
                classes[f"{obj.__module__}:{obj.__qualname__}"] = obj.name
    declared = {
        ep.value: [g, ep.name]
        for g in groups
        for ep in entry_points(group=f"dlcore.{g}")
        if ep.dist is not None and ep.dist.metadata["Name"] == "dlcore"
    }
    print(json.dumps({"classes": classes, "declared": declared, "registry_read": dlcore.registry._default is not None}))
    """
)


def test_every_built_in_is_declared_as_an_entry_point_and_importing_registers_nothing():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(GROUPS))], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(out.stdout.splitlines()[-1])
    classes, declared = found["classes"], found["declared"]

    assert {"affine", "conv2d", "relu", "softmax", "sgd", "resnet", "spiral"} <= {name for _, name in declared.values()}
    # Importing every dlcore module (the kit included) did not read or fill the registry.
    assert found["registry_read"] is False
    undeclared = sorted(set(classes) - set(declared) - NOT_COMPONENTS)
    assert not undeclared, f"built-in components without an entry point in dlcore/pyproject.toml: {undeclared}"
    assert set(declared) <= set(classes), sorted(set(declared) - set(classes))
    # The entry-point name is the name the class declares.
    assert {value: name for value, (_, name) in declared.items()} == {value: classes[value] for value in declared}
