"""Search methods by name, from the ``dljobs.search_methods`` entry-point group.

The built-ins are declared in dljobs' own ``pyproject.toml`` exactly as a third party
declares its own::

    [project.entry-points."dljobs.search_methods"]
    tpe = "dljobs_optuna:TPE"

As in ``dlcore.registry``: a method that fails to load is listed with its error and never
breaks the others; two distributions claiming one name are both refused unless the sweep
names one as ``distribution:name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from dlcore.errors import ConfigError
from dljobs.search.base import SEARCH_API_VERSION, SearchMethod

GROUP = "dljobs.search_methods"


@dataclass
class MethodEntry:
    name: str
    value: str
    distribution: str | None = None
    version: str | None = None
    cls: type[SearchMethod] | None = None
    error: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.distribution}:{self.name}" if self.distribution else self.name

    def describe(self) -> dict:
        """The listing row, the shape of ``dlcore.registry.Entry.describe``."""
        params = None
        if self.cls is not None and self.error is None:
            params = self.cls.Options.model_json_schema()
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "summary": getattr(self.cls, "summary", "") if self.cls is not None else "",
            "params": params,
            "api_version": getattr(self.cls, "api_version", None) if self.cls is not None else None,
            "error": self.error,
        }


def _normalize(name: str | None) -> str:
    return (name or "").lower().replace("_", "-")


def load_method_entry(ep: EntryPoint) -> MethodEntry:
    """Import and vet one entry point; never raises (the failure is the entry's ``error``)."""
    dist = getattr(ep, "dist", None)
    entry = MethodEntry(
        name=ep.name, value=ep.value,
        distribution=dist.metadata["Name"] if dist is not None else None,
        version=dist.version if dist is not None else None,
    )
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - one broken plugin never breaks the rest
        entry.error = f"{type(exc).__name__}: {exc}"
        return entry
    if not (isinstance(obj, type) and issubclass(obj, SearchMethod)):
        entry.error = f"TypeError: {ep.value} is not a dljobs.search.base.SearchMethod subclass, as {GROUP} requires"
        return entry
    entry.cls = obj
    if getattr(obj, "api_version", None) != SEARCH_API_VERSION:
        entry.error = (f"IncompatiblePlugin: {obj.__name__} targets search API version {obj.api_version}, "
                       f"this dljobs implements version {SEARCH_API_VERSION}")
        return entry
    try:
        obj.Options.model_json_schema()
    except Exception as exc:  # noqa: BLE001 - the plugin's error, shown in the listing
        entry.error = f"{type(exc).__name__}: options schema does not export: {exc}"
    return entry


class MethodRegistry:
    def __init__(self, entries: list[MethodEntry]):
        self.by_name: dict[str, list[MethodEntry]] = {}
        for entry in entries:
            self.by_name.setdefault(entry.name, []).append(entry)

    def listing(self) -> list[dict]:
        return [e.describe() for name in sorted(self.by_name) for e in self.by_name[name]]

    def names(self) -> list[str]:
        return sorted(n for n, es in self.by_name.items() if any(e.error is None for e in es))

    def get(self, name: object, field: str = "method.type") -> type[SearchMethod]:
        """The class ``name`` (or ``distribution:name``) means; ConfigError naming ``field`` otherwise."""
        if not isinstance(name, str) or not name:
            raise ConfigError(field, f"a search method name is a non-empty string; installed: {', '.join(self.names())}")
        dist, sep, bare = name.rpartition(":")
        claims = self.by_name.get(bare, [])
        if sep:
            claims = [e for e in claims if _normalize(e.distribution) == _normalize(dist)]
        if not claims:
            raise ConfigError(field, f"unknown search method {name!r}; installed: {', '.join(self.names())}")
        if len(claims) > 1:
            both = ", ".join(e.qualified_name for e in claims)
            raise ConfigError(field, f"{bare!r} is claimed by {both}: name one of them as distribution:name")
        entry = claims[0]
        if entry.error is not None:
            raise ConfigError(field, f"search method {name!r} ({entry.distribution}) cannot be used: {entry.error}")
        return entry.cls


@lru_cache(maxsize=1)
def default_methods() -> MethodRegistry:
    """The installed methods (read once per process; ``default_methods.cache_clear()`` re-reads)."""
    return MethodRegistry([load_method_entry(ep) for ep in entry_points(group=GROUP)])


def plugin_listing() -> dict[str, list[dict]]:
    """Every installed plugin by group: dlcore's components (``Registry.listing``) and, under
    ``search_methods``, the sweeps' search methods, in the same rows.  ``GET /api/v1/plugins``
    serves it and ``dljobs plugins --json`` prints it."""
    # deferred: the dlcore registry loads every component; only the listing needs it here
    from dlcore.registry import default_registry

    return {**default_registry().listing(), "search_methods": default_methods().listing()}
