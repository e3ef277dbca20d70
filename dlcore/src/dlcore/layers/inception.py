"""The inception module (Szegedy et al., 2014): parallel stacks concatenated along channels.

Every branch is a stack of layers applied to the same input; all branches must
keep one height and width, and their outputs are concatenated along the last
(channel) axis of the internal NHWC layout.  The input gradient is the sum of
the branches' input gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from dlcore.backend import xp
from dlcore.component import Layer, Shape, ShapeInfo
from dlcore.config import Config
from dlcore.errors import ConfigError
from dlcore.layers.sequential import Container, Sequential
from dlcore.layout import shape_to_public


def concat_forward(outputs):
    """Concatenate branch outputs along channels.

    Inputs:
    - outputs: list of (N, H, W, C_b)

    Returns:
    - out: (N, H, W, sum C_b)
    - cache: the channel offsets, [0, C_0, C_0 + C_1, ...]
    """
    offsets = np.cumsum([0] + [o.shape[-1] for o in outputs])
    return xp.concatenate(outputs, axis=-1), offsets


def concat_backward(dout, cache):
    """dout: (N, H, W, sum C_b) -> list of (N, H, W, C_b), one slice per branch."""
    offsets = cache
    return [dout[..., offsets[b] : offsets[b + 1]] for b in range(len(offsets) - 1)]


class InceptionConfig(Config):
    branches: list[list[dict[str, Any]]] = Field(
        min_length=1,
        description="Parallel stacks of spec entries, each keeping the input's height and width; "
        "outputs are concatenated along channels. An empty stack passes the input through.",
    )


class Inception(Container):
    """Parallel branches on one input, concatenated along channels.

    Children are named ``"branches.b.i.W"``: layer i of branch b.
    """

    name = "inception"
    summary = "Inception module: parallel branches concatenated along channels."
    Config = InceptionConfig
    example_shapes: ClassVar[tuple[Shape, ...]] = ((4, 4, 3),)
    examples = (
        {
            "branches": [
                [{"type": "conv2d", "filters": 2, "size": 1}],
                [
                    {"type": "conv2d", "filters": 2, "size": 1},
                    {"type": "relu"},
                    {"type": "conv2d", "filters": 3, "size": 3, "pad": 1},
                ],
                [],
            ]
        },
    )

    def __init__(self, config=None, registry=None, field: str = "", **params):
        super().__init__(config, registry, field, **params)
        prefix = f"{field}.branches" if field else "branches"
        self.branches = [
            Sequential({"layers": entries}, registry=registry, field=f"{prefix}[{b}]")
            for b, entries in enumerate(self.config.branches)
        ]
        self._children_flags()

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        for b, branch in enumerate(self.branches):
            for i, child in branch.named_children():
                yield f"branches.{b}.{i}", child

    def _branch_infos(self, in_shape: Shape) -> list[ShapeInfo]:
        if len(in_shape) != 3:
            raise ConfigError(
                "branches", f"inception: needs an image input (C, H, W), got {shape_to_public(in_shape)}"
            )
        infos = []
        for b, branch in enumerate(self.branches):
            try:
                info = branch.infer(in_shape)
            except ConfigError as exc:
                raise exc.at(f"branches[{b}]") from None
            if len(info.out_shape) != 3:
                raise ConfigError(
                    f"branches[{b}]",
                    f"inception: branch {b} outputs a vector {tuple(info.out_shape)}; every branch must output an image",
                )
            infos.append(info)
        first = infos[0].out_shape
        for b, info in enumerate(infos[1:], start=1):
            if tuple(info.out_shape[:2]) != tuple(first[:2]):
                raise ConfigError(
                    f"branches[{b}]",
                    f"inception: branch {b} outputs {info.out_shape[0]}x{info.out_shape[1]} but branch 0 outputs "
                    f'{first[0]}x{first[1]}; every branch must keep the same height and width (e.g. pad "same")',
                )
        return infos

    def infer(self, in_shape: Shape) -> ShapeInfo:
        infos = self._branch_infos(in_shape)
        h, w, _ = infos[0].out_shape
        channels = sum(info.out_shape[2] for info in infos)
        return ShapeInfo(
            (h, w, channels), sum(i.params for i in infos), sum(i.flops for i in infos)
        )

    def infer_detail(self, in_shape: Shape) -> dict:
        """What the model table shows inside the module: each branch's rows."""
        return {"branches": [branch.infer_rows(in_shape) for branch in self.branches]}

    def build(
        self, in_shape: Shape, rng: np.random.Generator, dtype=np.float32, initializer=None
    ) -> None:
        in_shape = tuple(int(s) for s in in_shape)
        self._branch_infos(in_shape)
        self.in_shape = in_shape
        for branch in self.branches:
            branch.build(in_shape, rng, dtype, initializer)

    def forward(
        self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """x: (N, H, W, C) -> (N, H, W, sum of the branches' channels)."""
        out, self.cache = concat_forward(
            [branch.forward(x, training, rng) for branch in self.branches]
        )
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout: (N, H, W, sum C_b) -> dx: (N, H, W, C) (None when need_input_grad is False)."""
        dx = None
        for branch, dbranch in zip(self.branches, concat_backward(dout, self.cache)):
            branch.need_input_grad = self.need_input_grad
            dbranch_x = branch.backward(np.ascontiguousarray(dbranch))
            if not self.need_input_grad:
                continue
            if dx is None:
                dx = dbranch_x.copy()  # an empty branch returns its own dout: never add into it
            else:
                dx += dbranch_x
        return dx
