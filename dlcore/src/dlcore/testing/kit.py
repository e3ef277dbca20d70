"""Running the checks: which apply to a component, one pytest id per check, results for the CLI.

After scikit-learn's ``parametrize_with_checks``: a plugin's own test suite runs

    from dlcore.testing import parametrize_with_checks

    @parametrize_with_checks([Swish, MyConv])
    def test_conforms(component, check):
        check(component)

and gets one test per (component, check), e.g. ``Swish-check_gradients``.  A
component declares checks it knowingly fails in ``expected_failures`` (check
name -> reason); pytest marks those ``xfail(strict=True)`` and ``dljobs plugins
--check`` reports them without failing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import dlcore
from dlcore.component import Component
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.registry import KINDS, Entry, Registry
from dlcore.testing.common import CheckSkipped, label, make, quiet
from dlcore.testing.component_checks import (
    INITIALIZER_CHECKS,
    LOSS_CHECKS,
    OPTIMIZER_CHECKS,
    PREPROCESSOR_CHECKS,
    REGULARIZER_CHECKS,
    SCHEDULE_CHECKS,
)
from dlcore.testing.layer_checks import LAYER_CHECKS
from dlcore.testing.model_checks import ARCHITECTURE_CHECKS, DATASET_CHECKS

#: The checks of each kind, in the order they run; ``check_schema`` runs first for every kind.
CHECKS_BY_KIND: dict[str, tuple[Callable, ...]] = {
    "layer": LAYER_CHECKS,
    "activation": LAYER_CHECKS,
    "loss": LOSS_CHECKS,
    "regularizer": REGULARIZER_CHECKS,
    "optimizer": OPTIMIZER_CHECKS,
    "schedule": SCHEDULE_CHECKS,
    "initializer": INITIALIZER_CHECKS,
    "preprocessor": PREPROCESSOR_CHECKS,
    "architecture": ARCHITECTURE_CHECKS,
    "dataset": DATASET_CHECKS,
}


def check_schema(component_cls: type, config: Mapping) -> None:
    """The declarations a registry, the docs and the API read: all present and consistent.

    name, kind, one-line summary, api_version, a ``Config`` subclass exporting JSON
    Schema, ``examples`` that construct, defaults that construct when no field is
    required, and ``hyperparameters()`` that round-trips through JSON.
    """
    who = component_cls.__name__
    assert issubclass(component_cls, Component), f"{who} is not a dlcore.component.Component"
    assert isinstance(component_cls.name, str) and component_cls.name, f"{who}: class attribute 'name' is empty"
    kinds = sorted(set(KINDS.values()))
    assert component_cls.kind in kinds, f"{who}: kind {component_cls.kind!r} is not one of {kinds}"
    summary = component_cls.summary
    assert isinstance(summary, str) and summary.strip(), f"{who}: class attribute 'summary' is empty"
    assert "\n" not in summary.strip(), f"{who}: 'summary' must be one line, got {summary!r}"
    assert component_cls.api_version == dlcore.PLUGIN_API_VERSION, (
        f"{who}: api_version {component_cls.api_version!r} but this dlcore implements plugin API "
        f"version {dlcore.PLUGIN_API_VERSION}"
    )
    schema_cls = component_cls.Config
    assert isinstance(schema_cls, type) and issubclass(schema_cls, Config), (
        f"{who}: Config must subclass dlcore.config.Config (extra='forbid', frozen)"
    )
    schema = schema_cls.model_json_schema()
    json.dumps(schema)
    assert schema.get("type") == "object", f"{who}: Config JSON Schema is not an object schema: {schema!r}"
    for field, info in schema_cls.model_fields.items():
        assert info.description, f"{who}: parameter {field!r} has no description (pydantic Field(description=...))"
    assert isinstance(component_cls.examples, tuple) and component_cls.examples, (
        f"{who}: 'examples' must be a non-empty tuple of valid configs"
    )
    unknown = set(component_cls.expected_failures) - set(all_check_names())
    assert not unknown, f"{who}: expected_failures names unknown checks {sorted(unknown)}"

    with quiet():
        if not any(f.is_required() for f in schema_cls.model_fields.values()):
            try:
                component_cls()
            except ConfigError:
                pass  # all fields optional, but a cross-field rule may still refuse {} (e.g. path or id)
        obj = make(component_cls, config)
        params = obj.hyperparameters()
        text = json.dumps(params)
        again = make(component_cls, json.loads(text)).hyperparameters()
    assert again == params, f"{label(component_cls, config)}: hyperparameters() does not round-trip: {params} -> {again}"


def all_check_names() -> list[str]:
    names = {check_schema.__name__}
    for checks in CHECKS_BY_KIND.values():
        names.update(c.__name__ for c in checks)
    return sorted(names)


def _component_class(component) -> type:
    return component if isinstance(component, type) else type(component)


def _configs(component) -> tuple[dict, ...]:
    """A class is checked on each of its ``examples``; an instance on its own parameters."""
    if isinstance(component, type):
        return tuple(component.examples)
    return (component.hyperparameters(),)


@dataclass(frozen=True)
class Check:
    """One named check; calling it on a component runs it over every example config."""

    name: str
    func: Callable[[type, Mapping], None]

    def __call__(self, component) -> None:
        cls = _component_class(component)
        for config in _configs(component):
            self.func(cls, config)

    def __repr__(self) -> str:
        return self.name


def checks_for(component) -> list[Check]:
    """Every check that applies to ``component`` (a class or an instance), schema first."""
    cls = _component_class(component)
    kind_checks = CHECKS_BY_KIND.get(cls.kind, ())
    return [Check(f.__name__, f) for f in (check_schema, *kind_checks)]


class Outcome(StrEnum):
    """How one check on one component came out (pytest's words, so reports read the same)."""

    PASSED = "passed"
    FAILED = "failed"
    XFAILED = "xfailed"  # a declared expected failure that failed
    XPASSED = "xpassed"  # declared, but passed: a failure, as pytest's strict xfail is
    SKIPPED = "skipped"


#: Outcomes that do not fail the kit.
OK_OUTCOMES = frozenset({Outcome.PASSED, Outcome.XFAILED, Outcome.SKIPPED})


@dataclass
class CheckResult:
    """The outcome of one check on one component; ``status`` is an :class:`Outcome`."""

    component: str
    check: str
    status: Outcome
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in OK_OUTCOMES


def run_check(component, check: Check, name: str | None = None) -> CheckResult:
    """Run one check and classify the outcome against the component's ``expected_failures``."""
    cls = _component_class(component)
    name = name or cls.__name__
    reason = dict(getattr(cls, "expected_failures", {}) or {}).get(check.name)
    start = time.perf_counter()
    try:
        check(component)
    except CheckSkipped as exc:
        return CheckResult(name, check.name, Outcome.SKIPPED, str(exc), time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001  AssertionError from a check, or whatever the component raised
        took = time.perf_counter() - start
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AssertionError) else str(exc)
        if reason is not None:
            return CheckResult(name, check.name, Outcome.XFAILED, f"expected: {reason}", took)
        return CheckResult(name, check.name, Outcome.FAILED, message, took)
    took = time.perf_counter() - start
    if reason is not None:
        return CheckResult(name, check.name, Outcome.XPASSED, f"declared expected failure passed: {reason}", took)
    return CheckResult(name, check.name, Outcome.PASSED, "", took)


def run_checks(component, name: str | None = None) -> list[CheckResult]:
    """Every applicable check on ``component``, each classified; never raises."""
    return [run_check(component, check, name) for check in checks_for(component)]


def check_component(component) -> list[CheckResult]:
    """Run the kit on a component class or instance; raise AssertionError listing every failure.

    Declared expected failures do not raise; an expected failure that passes
    does (remove it from ``expected_failures``).  Returns the results otherwise.
    """
    results = run_checks(component)
    bad = [r for r in results if not r.ok]
    if bad:
        raise AssertionError(
            f"{_component_class(component).__name__} fails {len(bad)} check(s):\n"
            + "\n".join(f"- {r.check} [{r.status}]: {r.message}" for r in bad)
        )
    return results


# --------------------------------------------------------------------------- pytest


class _LoadFailure:
    """Stands for a registry entry that failed to load: its only check fails with the load error."""

    def __init__(self, entry):
        self.entry = entry

    def __repr__(self) -> str:
        return f"<{self.entry.kind} {self.entry.qualified_name}: {self.entry.error}>"


def _check_loads(component: _LoadFailure) -> None:
    entry = component.entry
    raise AssertionError(f"{entry.kind} {entry.name!r} from {entry.origin()} ({entry.value}) is refused: {entry.error}")


class _PytestCheck:
    """A Check as pytest runs it: ``CheckSkipped`` becomes ``pytest.skip``."""

    def __init__(self, check):
        self.check = check
        self.name = getattr(check, "name", getattr(check, "__name__", "check"))

    def __call__(self, component) -> None:
        import pytest  # deferred: pytest is optional, only pytest runs of the kit need it

        try:
            self.check(component)
        except CheckSkipped as exc:
            pytest.skip(str(exc))

    def __repr__(self) -> str:
        return self.name


def _expand(components) -> list[tuple[str, object]]:
    """(id prefix, component) pairs from classes, instances, registry entries or a Registry."""
    if isinstance(components, Registry):
        components = components.entries()
    out = []
    for item in components:
        if isinstance(item, Entry):
            if item.error is not None or item.cls is None:
                out.append((f"{item.group}.{item.name}", _LoadFailure(item)))
            else:
                out.append((item.cls.__name__, item.cls))
        else:
            out.append((_component_class(item).__name__, item))
    return out


def parametrize_with_checks(components: Iterable | object):
    """A ``pytest.mark.parametrize("component, check", ...)`` with one param per (component, check).

    Inputs:
    - components: component classes or instances, :class:`dlcore.registry.Entry`
      objects, or a whole :class:`dlcore.registry.Registry` (an entry that failed
      to load gets one failing ``check_loads`` param carrying its error).

    Ids read ``Conv2D-check_gradients``; declared expected failures are marked
    ``xfail(reason=..., strict=True)``.
    """
    import pytest  # deferred: pytest is optional, only pytest runs of the kit need it

    params = []
    for prefix, component in _expand(components):
        if isinstance(component, _LoadFailure):
            params.append(pytest.param(component, _PytestCheck(_check_loads), id=f"{prefix}-check_loads"))
            continue
        expected = dict(getattr(_component_class(component), "expected_failures", {}) or {})
        for check in checks_for(component):
            marks = ()
            if check.name in expected:
                marks = (pytest.mark.xfail(reason=expected[check.name], strict=True),)
            params.append(pytest.param(component, _PytestCheck(check), id=f"{prefix}-{check.name}", marks=marks))
    return pytest.mark.parametrize("component, check", params)
