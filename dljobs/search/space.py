"""The search space of a sweep: spec paths and the domains their values are drawn from.

A space is ``{path: domain}``.  A path reaches any field of a job spec with dots and list
indices: ``optimizer.lr``, ``regularization[0].strength``, ``model.layers[3].p``.  Every
container on the way must exist in the base spec (a list index inside its list); the last
key of a mapping may be new (``optimizer.momentum`` on a spec that leaves it to its default).
A domain is one of::

    {"choice": [v1, v2, ...]}     any JSON values, tried as they are
    {"uniform": [a, b]}           a float in [a, b]
    {"loguniform": [a, b]}        a float in [a, b], uniform in log space (0 < a)
    {"int": [a, b]}               an integer in [a, b], both ends included

Errors are ``dlcore.errors.ConfigError`` naming the field as the request wrote it
(``space.optimizer.lr``), collected in one ``SpecError``.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dlcore.errors import ConfigError, SpecError

#: The most trials a finite space may enumerate (a grid, or a space validated whole at submission).
MAX_GRID = 1000
#: The largest end of an ``int`` domain (a float64 holds every integer up to here exactly).
MAX_INT = 2**53

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")

PathPart = str | int


def parse_path(path: str) -> list[PathPart]:
    """``"model.layers[3].p"`` -> ``["model", "layers", 3, "p"]``; ValueError when malformed."""
    if not isinstance(path, str) or not path:
        raise ValueError("a spec path is a non-empty string such as optimizer.lr")
    parts: list[PathPart] = []
    for segment in path.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(
                f"{segment!r} is not a field name with optional [index] parts "
                "(spec paths look like optimizer.lr, regularization[0].strength)"
            )
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return parts


#: Top-level spec sections a spec may leave out, read as ``{}`` (dlcore.spec.validate): a path into
#: one reaches its defaults, so ``training.epochs`` works on a base spec with no ``training``.
SECTIONS_WITH_DEFAULTS = ("training", "diagnostics")


def set_path(spec: dict, parts: list[PathPart], value: Any) -> None:
    """Put ``value`` at ``parts`` in ``spec`` (in place); ValueError naming what is missing."""
    node: Any = spec
    where = ""
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list):
                raise ValueError(f"{where or 'the spec'} is not a list, so [{part}] reaches nothing")  # noqa: TRY004 - a field error, not a type error
            if part >= len(node):
                raise ValueError(f"{where} has {len(node)} item(s), so [{part}] reaches nothing")
            where = f"{where}[{part}]"
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{where or 'the spec'} is not a mapping, so .{part} reaches nothing")  # noqa: TRY004 - a field error
            if part not in node and not last:
                if depth > 0 or part not in SECTIONS_WITH_DEFAULTS:
                    raise ValueError(f"the base spec has no {where + '.' if where else ''}{part}")
                node[part] = {}  # a section the base leaves to its defaults; the trial's validation judges it
            where = f"{where}.{part}" if where else part
        if last:
            node[part] = value
        else:
            node = node[part]


class _Domain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(_Domain):
    key: ClassVar[str] = "choice"
    choice: list[Any] = Field(min_length=1, max_length=MAX_GRID)

    def count(self) -> int:
        return len(self.choice)

    def values(self) -> list[Any]:
        return list(self.choice)

    def sample(self, rng: np.random.Generator) -> Any:
        return copy.deepcopy(self.choice[int(rng.integers(len(self.choice)))])

    def clip(self, value: Any) -> Any:
        return value


class _Range(_Domain):
    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.bounds
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("both ends must be finite numbers")
        if low > high:
            raise ValueError(f"the low end {low} is above the high end {high}")
        return self

    key: ClassVar[str]

    @property
    def bounds(self) -> tuple[float, float]:
        return tuple(getattr(self, self.key))  # type: ignore[return-value]

    def clip(self, value: float) -> float:
        low, high = self.bounds
        return min(max(value, low), high)


class Uniform(_Range):
    key: ClassVar[str] = "uniform"
    uniform: tuple[float, float]

    def sample(self, rng: np.random.Generator) -> float:
        low, high = self.uniform
        return float(rng.uniform(low, high))


class LogUniform(_Range):
    key: ClassVar[str] = "loguniform"
    loguniform: tuple[float, float]

    @model_validator(mode="after")
    def _positive(self):
        if self.loguniform[0] <= 0:
            raise ValueError(f"loguniform needs 0 < low, got {self.loguniform[0]}")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        low, high = self.loguniform
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))


class IntRange(_Range):
    key: ClassVar[str] = "int"
    int_: tuple[int, int] = Field(alias="int")

    @model_validator(mode="after")
    def _representable(self):
        if any(abs(v) > MAX_INT for v in self.int_):
            raise ValueError(f"int takes ends from -{MAX_INT} to {MAX_INT}, got {list(self.int_)}")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        return self.int_

    def count(self) -> int:
        return self.int_[1] - self.int_[0] + 1

    def values(self) -> list[int]:
        if self.count() > MAX_GRID:
            raise ValueError(f"an int domain of {self.count()} values is more than a grid takes ({MAX_GRID})")
        return list(range(self.int_[0], self.int_[1] + 1))

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.int_[0], self.int_[1] + 1))

    def clip(self, value: float) -> int:
        return round(super().clip(value))


Domain = Choice | Uniform | LogUniform | IntRange
DOMAIN_KEYS = {"choice": Choice, "uniform": Uniform, "loguniform": LogUniform, "int": IntRange}


def parse_domain(raw: Any) -> Domain:
    """One domain from its JSON form; ValueError with the reason."""
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DOMAIN_KEYS:
        raise ValueError(
            "a domain is one of {\"choice\": [...]}, {\"uniform\": [a, b]}, "
            "{\"loguniform\": [a, b]}, {\"int\": [a, b]}"
        )
    key = next(iter(raw))
    if key in ("uniform", "loguniform", "int"):
        pair = raw[key]
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"{key} takes [low, high], got {pair!r}")
        number = int if key == "int" else (int, float)
        if any(isinstance(v, bool) or not isinstance(v, number) for v in pair):
            kind = "integers" if key == "int" else "numbers"
            raise ValueError(f"{key} takes two {kind} [low, high], got {pair!r}")
    try:
        return DOMAIN_KEYS[key].model_validate(raw)
    except ValidationError as exc:
        raise ValueError("; ".join(_pydantic_reason(e) for e in exc.errors())) from None


def _pydantic_reason(error: dict) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


class SearchSpace:
    """``{path: domain}`` parsed and checked; the paths in the order the request gave them."""

    def __init__(self, domains: dict[str, Any], parts: dict[str, list[PathPart]]):
        self.domains = domains
        self.parts = parts

    @classmethod
    def parse(cls, raw: Any, base: dict | None = None, field: str = "space") -> SearchSpace:
        """Parse the request's ``space``; SpecError naming ``space.<path>`` for each fault.

        With ``base``, each path is also checked to reach a field of that spec.
        """
        if not isinstance(raw, dict) or not raw:
            raise SpecError([ConfigError(field, "must be a non-empty object {spec path: domain}")])
        errors: list[ConfigError] = []
        domains: dict[str, Any] = {}
        parts: dict[str, list[PathPart]] = {}
        for path, value in raw.items():
            where = f"{field}.{path}"
            try:
                parts[path] = parse_path(path)
            except ValueError as exc:
                errors.append(ConfigError(where, str(exc)))
                continue
            if base is not None:
                try:
                    set_path(copy.deepcopy(base), parts[path], None)
                except ValueError as exc:
                    errors.append(ConfigError(where, str(exc)))
                    continue
            try:
                domains[path] = parse_domain(value)
            except ValueError as exc:
                errors.append(ConfigError(where, str(exc)))
        if errors:
            raise SpecError(errors)
        return cls(domains, parts)

    @property
    def paths(self) -> list[str]:
        return list(self.domains)

    def is_finite(self) -> bool:
        """Every domain a finite set of values (``choice`` or ``int``)."""
        return all(hasattr(d, "count") for d in self.domains.values())

    def size(self) -> float:
        """How many points a finite space has (``math.inf`` otherwise)."""
        if not self.is_finite():
            return math.inf
        return math.prod(d.count() for d in self.domains.values())

    def grid(self) -> list[dict[str, Any]]:
        """Every point of a finite space of at most ``MAX_GRID`` points, the last path varying fastest."""
        if self.size() > MAX_GRID:
            raise ValueError(f"the space has {self.size()} points, more than a grid takes ({MAX_GRID})")
        values = [self.domains[p].values() for p in self.paths]
        return [dict(zip(self.paths, combo, strict=True)) for combo in itertools.product(*values)]

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One point drawn from every domain, in path order."""
        return {p: self.domains[p].sample(rng) for p in self.paths}

    def apply(self, base: dict, params: dict[str, Any]) -> dict:
        """A copy of ``base`` with each ``params[path]`` put at its path."""
        spec = copy.deepcopy(base)
        for path, value in params.items():
            set_path(spec, self.parts.get(path) or parse_path(path), value)
        return spec
