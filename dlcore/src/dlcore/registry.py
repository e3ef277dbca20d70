"""Components found through entry points: the one way anything becomes nameable.

Built-ins and third-party plugins register the same way, through entry-point
groups ``dlcore.<group>`` (``dlcore.layers``, ``dlcore.activations``, ...).
Nothing registers by import side effect: a :class:`Registry` is built from an
entry-point *source* (default: everything installed), and tests build their own
from explicit :class:`importlib.metadata.EntryPoint` objects or distributions.

Three rules, after stevedore and datasette but stricter on names:

- a plugin that fails to import (or is not a component of its group's kind, or
  whose ``Config`` does not export JSON Schema) is listed with its error and
  breaks nothing else;
- a component targeting another plugin API version than
  :data:`dlcore.PLUGIN_API_VERSION` is refused, listed with both versions;
- two distributions claiming one name in a group: neither wins.  The listing
  shows both, the bare name raises a :class:`ConfigError` naming both, and the
  qualified form ``distribution:name`` picks one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, entry_points

import dlcore
from dlcore import component
from dlcore.errors import ConfigError

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

#: The singular kind each group holds, as error messages say it.
KINDS = {
    "layers": "layer",
    "activations": "activation",
    "losses": "loss",
    "regularizers": "regularizer",
    "optimizers": "optimizer",
    "schedules": "schedule",
    "initializers": "initializer",
    "preprocessors": "preprocessor",
    "architectures": "architecture",
    "datasets": "dataset",
}

INSTALL_HINT = "install a plugin that provides it (pip install <plugin>); see 'dljobs plugins'"


def group_of(group_or_kind: str) -> str:
    """The group suffix for ``"optimizers"``, ``"optimizer"`` or ``"dlcore.optimizers"``."""
    g = group_or_kind.removeprefix("dlcore.")
    if g in KINDS:
        return g
    for group, kind in KINDS.items():
        if g == kind:
            return group
    raise KeyError(f"unknown component group {group_or_kind!r} (groups: {', '.join(GROUPS)})")


def normalize_distribution(name: str | None) -> str:
    """PEP 503 normalization: ``dlcore_extras`` and ``DLCore.Extras`` both name ``dlcore-extras``."""
    return re.sub(r"[-_.]+", "-", name or "").lower()


def _base_class(group: str) -> type:
    return {
        "layers": component.Layer,
        "activations": component.Layer,
        "losses": component.Loss,
        "regularizers": component.Regularizer,
        "optimizers": component.Optimizer,
        "schedules": component.Schedule,
        "initializers": component.Initializer,
        "preprocessors": component.Preprocessor,
        "architectures": component.Architecture,
        "datasets": component.Dataset,
    }[group]


@dataclass
class Entry:
    """One registered component: where it comes from, and either its class or why it is refused.

    ``error`` is None for a usable component, otherwise one line such as
    ``"ModuleNotFoundError: No module named 'dlcore.layers.conv2d'"``.
    """

    group: str
    name: str
    value: str
    distribution: str | None = None
    version: str | None = None
    cls: type | None = None
    error: str | None = None

    @property
    def kind(self) -> str:
        return KINDS[self.group]

    @property
    def qualified_name(self) -> str:
        return f"{self.distribution}:{self.name}" if self.distribution else self.name

    def origin(self) -> str:
        """``dlcore-extras 0.1.0`` (or the entry-point value when no distribution is known)."""
        if self.distribution:
            return f"{self.distribution} {self.version}" if self.version else self.distribution
        return f"<{self.value}>"

    def describe(self) -> dict:
        """The listing row: ``{name, distribution, version, summary, params, api_version, error}``."""
        cls = self.cls
        params = None
        error = self.error
        if cls is not None:
            # Loaded entries were vetted by load_entry; classes given to Registry() directly were not.
            params, schema_error = _export_schema(cls)
            error = error or schema_error
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "summary": getattr(cls, "summary", "") if cls is not None else "",
            "params": params,
            "api_version": getattr(cls, "api_version", None) if cls is not None else None,
            "error": error,
        }


def load_entry(ep: EntryPoint, group: str) -> Entry:
    """Import one entry point and vet it; never raises: failures land in ``Entry.error``."""
    dist = getattr(ep, "dist", None)
    entry = Entry(
        group=group,
        name=ep.name,
        value=ep.value,
        distribution=_dist_name(ep),
        version=dist.version if dist is not None else None,
    )
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001  stevedore's rule: one broken plugin never breaks the rest
        entry.error = f"{type(exc).__name__}: {exc}"
        return entry
    base = _base_class(group)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        entry.error = (
            f"TypeError: {ep.value} is not a {base.__module__}.{base.__name__} subclass, "
            f"as group dlcore.{group} requires"
        )
        return entry
    entry.cls = obj
    version = getattr(obj, "api_version", None)
    # Read at call time, not bound at import: the running dlcore's version is the one that counts.
    if version != dlcore.PLUGIN_API_VERSION:
        entry.error = (
            f"IncompatiblePlugin: {obj.__name__} targets plugin API version {version}, "
            f"this dlcore implements plugin API version {dlcore.PLUGIN_API_VERSION}; "
            f"install a release of {entry.distribution or 'the plugin'} built for version {dlcore.PLUGIN_API_VERSION}"
        )
        return entry
    # The job spec's JSON Schema and the OpenAPI document embed every usable component's schema:
    # one that cannot export is refused here, or it would break those documents for everyone.
    entry.error = _export_schema(obj)[1]
    return entry


def _export_schema(cls: type) -> tuple[dict | None, str | None]:
    """``(JSON Schema of cls.Config, None)``, or ``(None, the one-line error the listing shows)``."""
    try:
        return cls.Config.model_json_schema(), None
    except Exception as exc:  # noqa: BLE001  a broken schema is the plugin's error, not the registry's
        return None, f"{type(exc).__name__}: params schema does not export: {exc}"


def _dist_name(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _entry_points_of(source) -> list[tuple[str, EntryPoint]]:
    """(group suffix, entry point) pairs of dlcore groups from a source of entry points or distributions."""
    out = []
    for item in source:
        eps = item.entry_points if isinstance(item, Distribution) else [item]
        for ep in eps:
            if ep.group.startswith("dlcore.") and ep.group.removeprefix("dlcore.") in GROUPS:
                out.append((ep.group.removeprefix("dlcore."), ep))
    return out


class Registry:
    """Components by group and name, each an :class:`Entry` (loaded class or error).

    Build one with :meth:`from_entry_points` (installed plugins, or an explicit
    source), or from classes directly: ``Registry({"layers": {"affine": Affine}})``.
    """

    def __init__(self, components: Mapping[str, Mapping[str, type]] | None = None, entries: Iterable[Entry] = ()):
        self._entries: dict[str, dict[str, list[Entry]]] = {g: {} for g in GROUPS}
        for group, classes in (components or {}).items():
            group = group_of(group)
            for name, cls in classes.items():
                self._add(Entry(group, name, f"{cls.__module__}:{cls.__qualname__}", cls=cls))
        for entry in entries:
            self._add(entry)

    def _add(self, entry: Entry) -> None:
        claims = self._entries[entry.group].setdefault(entry.name, [])
        for other in claims:
            # One distribution seen twice on sys.path (e.g. editable + site): the same claim, once.
            if normalize_distribution(other.distribution) == normalize_distribution(entry.distribution) and (
                other.value == entry.value
            ):
                return
        claims.append(entry)

    @classmethod
    def from_entry_points(
        cls, source: Iterable[EntryPoint | Distribution] | None = None, exclude: Iterable[str] = ()
    ) -> Registry:
        """A registry of the ``dlcore.*`` entry points in ``source`` (default: everything installed).

        ``source`` items are :class:`EntryPoint` objects (their ``dist`` gives the
        distribution, None for a bare one) or :class:`Distribution` objects.
        ``exclude`` names distributions to leave out (``exclude=["dlcore-extras"]``).
        """
        if source is None:
            source = [ep for group in GROUPS for ep in entry_points(group=f"dlcore.{group}")]
        skip = {normalize_distribution(d) for d in exclude}
        return cls(
            entries=[
                load_entry(ep, group)
                for group, ep in _entry_points_of(source)
                if not skip or normalize_distribution(_dist_name(ep)) not in skip
            ]
        )

    # ------------------------------------------------------------------ introspection

    def entries(self, group: str | None = None) -> list[Entry]:
        """Every entry of ``group`` (all groups when None), sorted by name then distribution."""
        groups = GROUPS if group is None else (group_of(group),)
        out = []
        for g in groups:
            for name in sorted(self._entries[g]):
                out.extend(sorted(self._entries[g][name], key=lambda e: normalize_distribution(e.distribution)))
        return out

    def names(self, group: str, include_errors: bool = False) -> list[str]:
        """Sorted names of ``group`` that a spec may use: each resolves to a usable class.

        A name claimed several times where specs look it up (:meth:`claims`:
        layers and activations share one namespace) appears only in its
        qualified forms (``dljobs:relu``, ``dlcore-extras:relu``): the bare name
        is refused.  ``include_errors=True`` gives every listed bare name
        instead, usable or not.
        """
        group = group_of(group)
        if include_errors:
            return sorted(self._entries[group])
        out = []
        for name, entries in self._entries[group].items():
            usable = [e for e in entries if e.error is None]
            if len(self.claims(group, name)) == 1:
                out.extend(e.name for e in usable)
            else:
                out.extend(e.qualified_name for e in usable)
        return sorted(out)

    def claims(self, group: str, name: str) -> list[Entry]:
        """Every entry a bare ``name`` of ``group`` contends with where a spec names it.

        Layers and activations are one namespace (a layer stack takes both), so
        a layer and an activation of one name are two claims; other groups
        stand alone.  More than one claim: the bare name is refused.
        """
        group = group_of(group)
        groups = STACK_GROUPS if group in STACK_GROUPS else (group,)
        return [e for g in groups for e in self._entries[g].get(name, [])]

    def errors(self) -> list[Entry]:
        """Entries that failed to load or were refused."""
        return [e for e in self.entries() if e.error is not None]

    def listing(self) -> dict[str, list[dict]]:
        """``{group: [row, ...]}`` for every group, rows sorted by name (``Entry.describe``).

        ``dljobs plugins --json`` prints this, and ``GET /api/v1/plugins`` serves it.
        """
        return {g: [e.describe() for e in self.entries(g)] for g in GROUPS}

    def components(self, group: str | None = None) -> list[type]:
        """Usable component classes (no errors), in listing order."""
        return [e.cls for e in self.entries(group) if e.error is None and e.cls is not None]

    # ------------------------------------------------------------------ lookup

    def entry(self, group: str, name: str) -> Entry:
        """The one entry ``name`` (or ``distribution:name``) means in ``group``; ConfigError otherwise."""
        group = group_of(group)
        return self._resolve((group,), name, KINDS[group])

    def get(self, group: str, name: str) -> type:
        """The class ``name`` (or ``distribution:name``) names in ``group``.

        Raises ``ConfigError(field="type")`` for an unknown, ambiguous, broken or
        refused name; the message says which and what to do.
        """
        return self.entry(group, name).cls

    def get_layer(self, name: str) -> type:
        """A class from ``layers`` or ``activations``: the names a layer stack may use."""
        return self._resolve(STACK_GROUPS, name, "layer or activation").cls

    def _resolve(self, groups: tuple[str, ...], name: str, what: str) -> Entry:
        if not isinstance(name, str) or not name:
            raise ConfigError("type", f"{what} name must be a non-empty string, got {name!r}")
        dist, sep, bare = name.rpartition(":")
        claims = [e for g in groups for e in self._entries[g].get(bare, [])]
        if sep:
            wanted = normalize_distribution(dist)
            picked = [e for e in claims if normalize_distribution(e.distribution) == wanted]
            if not picked:
                if claims:
                    others = ", ".join(e.qualified_name for e in claims)
                    raise ConfigError("type", f"no {what} {bare!r} from distribution {dist!r}; installed: {others}")
                raise ConfigError("type", self._unknown_message(groups, bare, what))
            claims = picked[:1]
        if not claims:
            raise ConfigError("type", self._unknown_message(groups, bare, what))
        if len(claims) > 1:
            both = " and ".join(f"{e.origin()} ({e.value})" for e in claims)
            choices = " or ".join(repr(e.qualified_name) for e in claims)
            raise ConfigError(
                "type",
                f"{what} {bare!r} is provided by {len(claims)} distributions: {both}; "
                f"neither is picked silently: name one as {choices}",
            )
        entry = claims[0]
        if entry.error is not None:
            raise ConfigError("type", f"{entry.kind} {bare!r} from {entry.origin()} cannot be used: {entry.error}")
        return entry

    def _unknown_message(self, groups: tuple[str, ...], name: str, what: str) -> str:
        installed = sorted({n for g in groups for n in self.names(g)})
        msg = f"unknown {what} {name!r}"
        close = difflib.get_close_matches(name, installed, n=3)
        if close:
            msg += f" (did you mean {', '.join(repr(c) for c in close)}?)"
        elsewhere = [KINDS[g] for g in GROUPS if g not in groups and name in self._entries[g]]
        if elsewhere:
            msg += f"; {name!r} is a{'n' if elsewhere[0][0] in 'aeiou' else ''} {elsewhere[0]}, not a{'n' if what[0] in 'aeiou' else ''} {what}"
        plural = " and ".join(f"{KINDS[g]}s" if not KINDS[g].endswith("s") else f"{KINDS[g]}es" for g in groups)
        msg += f"; installed {plural}: {', '.join(installed) or 'none'}; {INSTALL_HINT}"
        return msg


_default: Registry | None = None


def default_registry(refresh: bool = False) -> Registry:
    """The registry of everything installed, read once per process (``refresh=True`` re-reads)."""
    global _default
    if _default is None or refresh:
        _default = Registry.from_entry_points()
    return _default
