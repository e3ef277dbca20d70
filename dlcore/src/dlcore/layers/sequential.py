"""Layer stacks: building layers from spec entries, and the Sequential container.

A spec names a layer as an entry ``{"type": "conv2d", "filters": 8, "size": 3}``;
:func:`make_layer` turns one entry into a layer through the registry, and
:class:`Sequential` chains a list of entries (the model's top-level stack, and
the body of the residual and inception blocks).

Containers (a class attribute ``container = True``) are built from their params
with ``cls(params, registry=registry, field=field)`` so nested errors name their
full path, and expose their children's arrays under dotted names: ``"3.W"`` is
the ``W`` of child 3, ``"3.0.W"`` the ``W`` of the first layer inside the block
at index 3, ``"3.branches.1.0.W"`` a layer of an inception branch.

Field paths: ``Sequential(..., field="model.layers")`` builds child ``i`` with
``field="model.layers[i]"``, so a bad parameter reads ``model.layers[2].size``.
Shape inference (``infer_rows``) raises with fields relative to the stack
(``"[2].size"``): the caller prefixes its own path with ``ConfigError.at``.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from dlcore.component import Layer, Shape, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.parallel import own_cores
from dlcore.registry import default_registry


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def make_layer(entry: dict, registry=None, field: str = "") -> Layer:
    """Build one layer from a spec entry ``{"type": name, ...params}``.

    Inputs:
    - entry: the spec entry; ``type`` is looked up with ``registry.get_layer``
      (layers and activations).
    - registry: a :class:`dlcore.registry.Registry` (default: everything installed).
    - field: the entry's path in the request, e.g. ``"model.layers[2]"``.

    Returns:
    - layer: an unbuilt layer.

    Raises ConfigError with ``field`` prefixed: ``model.layers[2].size``,
    ``model.layers[2].type``.
    """
    if registry is None:
        registry = default_registry()
    if not isinstance(entry, dict):
        raise ConfigError(
            field, f'a layer must be an object {{"type": ...}}, got {type(entry).__name__}'
        )
    if "type" not in entry:
        raise ConfigError(_join(field, "type"), "missing: every layer names its 'type'")
    name = entry["type"]
    if not isinstance(name, str):
        raise ConfigError(_join(field, "type"), f"must be a string, got {name!r}")
    try:
        cls = registry.get_layer(name)
    except ConfigError as exc:
        raise exc.at(field) from None
    params = {k: v for k, v in entry.items() if k != "type"}
    if getattr(cls, "container", False):
        # Containers prefix their own errors and their children's (which carry full paths).
        return cls(params, registry=registry, field=field)
    try:
        return cls(params)
    except ConfigError as exc:
        raise exc.at(field) from None


class _ChildArrays(MutableMapping):
    """A live flat view of the children's ``params``, ``grads`` or ``state`` dicts.

    Keys are ``"<child prefix>.<key>"``; reading, assigning and deleting go
    through to the child's own dict, so optimizers and checkpoint loaders may
    treat a container exactly like a leaf layer.
    """

    def __init__(self, owner: Container, attr: str):
        self._owner = owner
        self._attr = attr

    def _locate(self, key: str) -> tuple[MutableMapping, str]:
        for prefix, child in self._owner.named_children():
            if key.startswith(prefix + "."):
                return getattr(child, self._attr), key[len(prefix) + 1 :]
        raise KeyError(key)

    def __getitem__(self, key: str) -> np.ndarray:
        target, rest = self._locate(key)
        return target[rest]

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        target, rest = self._locate(key)
        target[rest] = value

    def __delitem__(self, key: str) -> None:
        target, rest = self._locate(key)
        del target[rest]

    def __iter__(self) -> Iterator[str]:
        for prefix, child in self._owner.named_children():
            for key in list(getattr(child, self._attr)):
                yield f"{prefix}.{key}"

    def __len__(self) -> int:
        return sum(len(getattr(child, self._attr)) for _, child in self._owner.named_children())

    # One walk over the children instead of a lookup per key: the trainer reads these every step.
    def items(self) -> list[tuple[str, np.ndarray]]:
        return [
            (f"{prefix}.{key}", arr)
            for prefix, child in self._owner.named_children()
            for key, arr in getattr(child, self._attr).items()
        ]

    def values(self) -> list[np.ndarray]:
        return [arr for _, arr in self.items()]

    def keys(self) -> list[str]:
        return [key for key, _ in self.items()]

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: array{tuple(v.shape)}' for k, v in self.items())}}}"


class Container(Layer):
    """A layer made of child layers; its params, grads and state are its children's.

    Subclasses define ``named_children() -> Iterator[(prefix, Layer)]``.
    ``stochastic`` and ``mode_dependent`` are true when any child's is.
    """

    container: ClassVar[bool] = True

    def __init__(self, config=None, registry=None, field: str = "", **params):
        """Validate the block's own parameters (errors prefixed with ``field``, the block's path
        in the request); subclasses then build their children with ``registry``."""
        try:
            super().__init__(config, **params)
        except ConfigError as exc:
            raise exc.at(field) from None
        self.field = field

    # The base constructor assigns empty dicts; a container's dicts are views of its children.
    params = property(
        lambda self: _ChildArrays(self, "params"), lambda self, value: self._assign("params", value)
    )
    grads = property(
        lambda self: _ChildArrays(self, "grads"), lambda self, value: self._assign("grads", value)
    )
    state = property(
        lambda self: _ChildArrays(self, "state"), lambda self, value: self._assign("state", value)
    )

    def _assign(self, attr: str, value: dict) -> None:
        if value:
            view = getattr(self, attr)
            for key, arr in value.items():
                view[key] = arr

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        raise NotImplementedError

    def regularized_params(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, child in self.named_children():
            for key, arr in child.regularized_params():
                yield f"{prefix}.{key}", arr

    def layers_flat(self) -> Iterator[Layer]:
        """Every leaf layer, depth-first, in forward order."""
        for _, child in self.named_children():
            if getattr(child, "container", False):
                yield from child.layers_flat()
            else:
                yield child

    def _children_flags(self) -> None:
        children = [child for _, child in self.named_children()]
        self.stochastic = type(self).stochastic or any(c.stochastic for c in children)
        self.mode_dependent = type(self).mode_dependent or any(c.mode_dependent for c in children)


class SequentialConfig(Config):
    layers: list[dict[str, Any]] = Field(
        default_factory=list,
        description='The stack, in order: spec entries {"type": name, ...params}.',
    )


class Sequential(Container):
    """A stack of layers applied in order; the model's top-level container.

    Not registered as a component: a spec's ``model.layers`` is a Sequential,
    and the residual and inception blocks hold Sequentials.
    """

    name = "sequential"
    summary = "Layers applied one after the other."
    Config = SequentialConfig
    examples = ({"layers": [{"type": "affine", "units": 4}]},)

    def __init__(self, config=None, registry=None, field: str = "", **params):
        super().__init__(config, registry, field, **params)
        self.children: list[Layer] = [
            make_layer(entry, registry, f"{field}[{i}]")
            for i, entry in enumerate(self.config.layers)
        ]
        self._children_flags()

    @classmethod
    def of(cls, layers: list[Layer]) -> Sequential:
        """A Sequential over existing (built or unbuilt) layer instances."""
        entries = [{"type": layer.name, **layer.hyperparameters()} for layer in layers]
        seq = cls.__new__(cls)
        Layer.__init__(seq, SequentialConfig.model_construct(layers=entries))
        seq.field = ""
        seq.children = list(layers)
        seq._children_flags()
        return seq

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        for i, child in enumerate(self.children):
            yield str(i), child

    def __len__(self) -> int:
        return len(self.children)

    def __getitem__(self, i: int) -> Layer:
        return self.children[i]

    def infer_rows(self, in_shape: Shape) -> list[dict]:
        """One row per child for a per-sample ``in_shape`` (internal layout).

        Returns:
        - rows: [{"index": i, "type": name, "out_shape": tuple, "params": int, "flops": int}];
          a block's row also holds what its ``infer_detail(in_shape)`` gives (the residual
          block's ``shortcut`` and branch ``layers``, the inception module's ``branches``),
          each nested stack as rows of this form.

        Raises ConfigError with field ``"[i].<param>"`` (relative to the stack).
        """
        shape = tuple(int(s) for s in in_shape)
        # A block asks its stack for both ``infer`` and ``infer_detail`` (and ``build`` for
        # ``infer`` again): without the memo each level of nesting doubled the work, so a spec
        # of 25 nested residual blocks took minutes to validate. Layers are immutable once made.
        memo = self.__dict__.setdefault("_rows_memo", {})
        if shape not in memo:
            memo[shape] = self._compute_rows(shape)
        return list(memo[shape])

    def _compute_rows(self, shape: tuple[int, ...]) -> list[dict]:
        rows = []
        for i, child in enumerate(self.children):
            try:
                info = child.infer(shape)
                detail = child.infer_detail(shape) if hasattr(child, "infer_detail") else {}
            except ConfigError as exc:
                raise exc.at(f"[{i}]") from None
            rows.append(
                {
                    "index": i,
                    "type": child.name,
                    "out_shape": tuple(info.out_shape),
                    "params": int(info.params),
                    "flops": int(info.flops),
                    **detail,
                }
            )
            shape = tuple(info.out_shape)
        return rows

    def infer(self, in_shape: Shape) -> ShapeInfo:
        rows = self.infer_rows(in_shape)
        out_shape = rows[-1]["out_shape"] if rows else tuple(int(s) for s in in_shape)
        return ShapeInfo(out_shape, sum(r["params"] for r in rows), sum(r["flops"] for r in rows))

    def build(
        self, in_shape: Shape, rng: np.random.Generator, dtype=np.float32, initializer=None
    ) -> None:
        shape = tuple(int(s) for s in in_shape)
        self.in_shape = shape
        for i, child in enumerate(self.children):
            try:
                child.build(shape, rng, dtype, initializer)
                shape = tuple(child.infer(shape).out_shape)
            except ConfigError as exc:
                raise exc.at(f"[{i}]") from None
        for before, child in zip(self.children, self.children[1:]):
            if hasattr(child, "input_is_scratch"):
                # Only this stack sees the output of ``before``, and ``before`` keeps none of it.
                child.input_is_scratch = not getattr(before, "container", False) and bool(
                    getattr(before, "fresh_output", False)
                )
        self._pass_need_input_grad()

    def _pass_need_input_grad(self) -> None:
        if self.children:
            self.children[0].need_input_grad = self.need_input_grad

    def forward(
        self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """x: (N, ...) internal layout -> the last child's output."""
        # dlcore's pool, not the BLAS, spreads the layers over the cores (dlcore.parallel).
        with own_cores():
            for child in self.children:
                x = child.forward(x, training=training, rng=rng)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout: gradient of the output -> gradient of the input (None when not needed)."""
        self._pass_need_input_grad()
        with own_cores():
            for child in reversed(self.children):
                dout = child.backward(dout)
        return dout
