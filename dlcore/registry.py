"""Components found through entry points.

Minimal first version: ``Registry.from_entry_points()`` reads every group,
``get(kind, name)`` returns the component class.  The plugin issue extends it
with load-error listing, name collisions and API-version checks.
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUPS = (
    "layers",
    "activations",
    "losses",
    "regularizers",
    "optimizers",
    "schedules",
    "initializers",
    "preprocessors",
    "architectures",
    "datasets",
)

#: Groups whose names a layer stack may use (activations are layers in a stack).
STACK_GROUPS = ("layers", "activations")


class Registry:
    """Component classes by group and name."""

    def __init__(self, components: dict[str, dict[str, type]]):
        self._components = {g: dict(components.get(g, {})) for g in GROUPS}

    @classmethod
    def from_entry_points(cls) -> "Registry":
        found: dict[str, dict[str, type]] = {g: {} for g in GROUPS}
        for group in GROUPS:
            for ep in entry_points(group=f"dlcore.{group}"):
                found[group][ep.name] = ep.load()
        return cls(found)

    def names(self, group: str) -> list[str]:
        return sorted(self._components[group])

    def get(self, group: str, name: str) -> type:
        from dlcore.errors import ConfigError

        try:
            return self._components[group][name]
        except KeyError:
            raise ConfigError("type", f"unknown {group[:-1]} {name!r}") from None

    def get_layer(self, name: str) -> type:
        """A class from ``layers`` or ``activations``: the names a layer stack may use."""
        for group in STACK_GROUPS:
            if name in self._components[group]:
                return self._components[group][name]
        from dlcore.errors import ConfigError

        raise ConfigError("type", f"unknown layer or activation {name!r}")


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of everything installed, read once per process."""
    global _default
    if _default is None:
        _default = Registry.from_entry_points()
    return _default
