"""Base classes of every component kind: the contract plugins code against.

A component is a class with class attributes ``name``, ``summary``,
``api_version`` and ``Config`` (its typed parameter schema, a subclass of
:class:`dlcore.config.Config`).  It is constructed from its parameters only::

    layer = Conv2D(filters=8, size=3, pad="same")
    layer = Conv2D({"filters": 8, "size": 3})

and ``self.config`` holds the validated, frozen parameters.  Bad parameters
raise :class:`dlcore.errors.ConfigError` naming the field and the rule.

Kinds and their entry-point groups:

=============  ======================  ==========================
kind           group                   base class
=============  ======================  ==========================
layer          dlcore.layers           :class:`Layer`
activation     dlcore.activations      :class:`Layer`
loss           dlcore.losses           :class:`Loss`
regularizer    dlcore.regularizers     :class:`Regularizer`
optimizer      dlcore.optimizers       :class:`Optimizer`
schedule       dlcore.schedules        :class:`Schedule`
initializer    dlcore.initializers     :class:`Initializer`
preprocessor   dlcore.preprocessors    :class:`Preprocessor`
architecture   dlcore.architectures    :class:`Architecture`
dataset        dlcore.datasets         :class:`Dataset`
=============  ======================  ==========================
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dlcore.config import Config, EmptyConfig, parse_config

Shape = tuple[int, ...]


class Component:
    """What every component declares: a name, a one-line summary, a schema, a plugin API version."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    api_version: ClassVar[int] = 1
    Config: ClassVar[type[Config]] = EmptyConfig
    #: Parameter sets that are valid and small: the conformance kit and the docs use them.
    examples: ClassVar[tuple[dict, ...]] = ({},)
    #: Conformance-kit checks known to fail, with the reason: {"check_gradients": "why"}.
    expected_failures: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Mapping[str, Any] | Config | None = None, **params: Any):
        if config is not None and params:
            raise TypeError("pass parameters either as one mapping or as keywords, not both")
        self.config = parse_config(self.Config, config if config is not None else params, self.name)

    def hyperparameters(self) -> dict:
        """The parameters as a plain dict; ``type(self)(c.hyperparameters())`` round-trips."""
        return self.config.model_dump(mode="json")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class ShapeInfo:
    """What shape inference reports for one layer, without data.

    out_shape: per-sample output shape in the internal layout, ``(H, W, C)`` or ``(D,)``.
    params: number of trained scalars.
    flops: forward floating-point operations per sample (a multiply-add counts 2).
    """

    out_shape: Shape
    params: int = 0
    flops: int = 0

    @classmethod
    def same_shape(cls, in_shape: Shape, flops_per_value: int = 0, params: int = 0) -> ShapeInfo:
        """The report of a layer whose output has its input's shape (activations, dropout, batchnorm).

        flops_per_value: forward operations per input value; params: trained scalars.
        """
        shape = tuple(int(s) for s in in_shape)
        return cls(out_shape=shape, params=params, flops=flops_per_value * math.prod(shape))


class Layer(Component):
    """A differentiable operation with explicit parameters, gradients and state.

    Layout: ``forward`` receives and returns internal-layout arrays: ``(N, D)``
    for vectors, ``(N, H, W, C)`` for images.  Per-sample shapes given to
    ``infer`` and ``build`` follow the same layout: ``(D,)`` or ``(H, W, C)``.

    Three dicts give optimizers, checkpoints and serialization one uniform view:

    - ``params``: trained arrays (e.g. ``W``, ``b``, ``gamma``, ``beta``);
    - ``grads``: their gradients, under the same keys, written by ``backward``;
    - ``state``: non-trained arrays (e.g. batchnorm ``running_mean``).

    ``regularized`` names the params a regularizer applies to (weights, never
    biases or batchnorm's gamma and beta).  ``stochastic`` says whether training
    mode draws from the ``rng`` passed to ``forward``; ``mode_dependent``
    whether training and evaluation compute different functions.

    Lifecycle: ``layer = Cls(**cfg)``; ``info = layer.infer(in_shape)`` (pure, no
    data; raises ``ConfigError`` for impossible configurations);
    ``layer.build(in_shape, rng, dtype, initializer)`` allocates parameters;
    ``out = layer.forward(x, training=..., rng=...)`` keeps what backward needs
    in ``self.cache``; ``dx = layer.backward(dout)`` sets ``self.grads`` and
    returns the input gradient.  ``forward`` never modifies ``x`` in place.

    The contract that lets one model serve concurrent predictions:

    - the cache is a value: the arrays of this call (x, masks, normalized
      inputs), never a buffer the layer keeps for its next call;
    - scratch arrays worth reusing (conv2d's padded input and im2col columns) come
      from :meth:`dlcore.workspace.Workspace.current`, the caller's workspace:
      ``Model.scores`` gives each call its own, other callers use their thread's;
    - in evaluation mode ``forward`` writes nothing to the layer but ``self.cache``
      (training updates batchnorm's running statistics, as it must).

    ``backward`` overwrites ``self.grads`` with this pass's gradients; it never
    accumulates into them (docs/dlcore.md says why).

    Skipping the input gradient has one mechanism: ``need_input_grad``.  The model
    clears it on the stack, a container passes it to the children that produce its
    own input gradient (a Sequential to its first child), and a layer whose flag is
    False may return None from ``backward`` instead of computing ``dx`` (the
    functional pairs take it as their ``need_input_grad`` argument).  A layer that
    ignores the flag and returns ``dx`` anyway is correct, only slower.
    """

    kind: ClassVar[str] = "layer"
    regularized: ClassVar[tuple[str, ...]] = ()
    stochastic: ClassVar[bool] = False
    mode_dependent: ClassVar[bool] = False
    #: Small per-sample input shapes (internal layout) the kit checks the layer on.
    example_shapes: ClassVar[tuple[Shape, ...]] = ((6,),)
    #: Input values where forward has no derivative (ReLU's 0): the kit's gradient check
    #: moves inputs closer than 0.01 to one of them away from it (Chainer's habit).
    kinks: ClassVar[tuple[float, ...]] = ()
    #: True when equal inputs are points without a derivative (max pooling's ties): the
    #: kit's gradient check spreads its inputs at least 0.01 apart.
    ties: ClassVar[bool] = False

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.cache: Any = None
        self.in_shape: Shape | None = None
        self.need_input_grad = True  # see the class docstring: the one way to skip dx

    def infer(self, in_shape: Shape) -> ShapeInfo:
        """Output shape, parameter count and forward FLOPs for a per-sample ``in_shape``."""
        raise NotImplementedError

    def build(self, in_shape: Shape, rng: np.random.Generator, dtype=np.float32, initializer=None) -> None:
        """Allocate parameters and state for a per-sample ``in_shape``.

        ``initializer`` (an :class:`Initializer`) draws weight arrays through
        :func:`dlcore.initializers.draw_weights`, which resolves None to the default
        (He) in one place; biases start at zero.  Layers without parameters need not
        override.
        """
        self.infer(in_shape)
        self.in_shape = tuple(in_shape)

    def forward(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # Containers (residual, inception, the model) override these three to prefix children.
    def named_params(self) -> Iterator[tuple[str, np.ndarray]]:
        yield from self.params.items()

    def named_grads(self) -> Iterator[tuple[str, np.ndarray]]:
        yield from self.grads.items()

    def named_state(self) -> Iterator[tuple[str, np.ndarray]]:
        yield from self.state.items()

    def regularized_params(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) of the parameters a regularizer applies to."""
        for key in self.regularized:
            if key in self.params:
                yield key, self.params[key]


# --------------------------------------------------------------------------- losses


class Loss(Component):
    """A data loss over class scores, mean over samples.

    ``forward(scores, y) -> (loss, dscores)`` with scores: (N, C) and y: (N,)
    integer labels in [0, C); dscores has the shape of scores.
    """

    kind: ClassVar[str] = "loss"

    def forward(self, scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def expected_initial_loss(self, num_classes: int) -> float:
        """The loss the catalogue predicts with tiny weights (all scores about 0)."""
        raise NotImplementedError

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities from scores (N, C); softmax of the scores unless a loss knows better."""
        shifted = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)


class Regularizer(Component):
    """A penalty on weights: ``penalty(w) -> (value, dw)``; the config has ``strength``."""

    kind: ClassVar[str] = "regularizer"

    def penalty(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError


# --------------------------------------------------------------------------- optimization


#: Optimizer slots per parameter assumed for a rule that does not declare ``slots_per_param``.
ASSUMED_SLOTS_PER_PARAM = 2


class Optimizer(Component):
    """An update rule applied to every parameter after the whole backward pass.

    ``step(params, grads, lr)`` updates each array of ``params`` in place, using
    ``grads`` under the same keys and ``lr``, the current learning rate (the
    schedule's value; the config's ``lr`` is the base rate).  Per-parameter
    slots (velocity, moments) live in ``self.slots[key][slot_name]`` and the
    step count in ``self.t``; ``state_dict`` / ``load_state_dict`` round-trip
    them for checkpoints as flat ``{"key/slot": array}``.
    """

    kind: ClassVar[str] = "optimizer"
    #: Arrays the shape of each parameter the rule keeps (adam's m and v: 2), which a
    #: checkpoint stores beside the weights; None when a plugin does not say (``infer``
    #: then counts :data:`ASSUMED_SLOTS_PER_PARAM`, the most a built-in keeps).
    slots_per_param: ClassVar[int | None] = None

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        self.slots: dict[str, dict[str, np.ndarray]] = {}
        self.t = 0

    @property
    def lr(self) -> float:
        return float(self.config.lr)

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        self.t += 1
        for key, w in params.items():
            self.update(w, grads[key], self.slots.setdefault(key, {}), lr)

    def update(self, w: np.ndarray, dw: np.ndarray, slots: dict[str, np.ndarray], lr: float) -> None:
        """Update one array ``w`` in place from its gradient ``dw`` and its ``slots``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {f"{key}/{slot}": arr for key, s in self.slots.items() for slot, arr in s.items()}
        out["t"] = np.asarray(self.t)
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.slots = {}
        self.t = int(state["t"])
        for flat, arr in state.items():
            if flat == "t":
                continue
            key, slot = flat.rsplit("/", 1)
            self.slots.setdefault(key, {})[slot] = np.array(arr)


class Schedule(Component):
    """A learning-rate schedule: ``lr(base_lr, epoch)`` where ``epoch`` is fractional.

    ``epoch`` = iteration / iterations per epoch; periods in the config are in
    epochs.  ``warmup_epochs`` ramps linearly from 0 to the decayed value.
    Subclasses implement ``factor(epoch)``, the decay multiplier without warm-up.
    """

    kind: ClassVar[str] = "schedule"

    def factor(self, epoch: float) -> float:
        raise NotImplementedError

    def lr(self, base_lr: float, epoch: float) -> float:
        value = base_lr * self.factor(epoch)
        warmup = float(getattr(self.config, "warmup_epochs", 0.0) or 0.0)
        if warmup > 0 and epoch < warmup:
            value *= epoch / warmup
        return float(value)


class Initializer(Component):
    """Draws a weight array: ``init(shape, fan_in, fan_out, rng, dtype)``."""

    kind: ClassVar[str] = "initializer"

    def __call__(self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------- data


class Preprocessor(Component):
    """A transform fitted on the training split and saved with the model.

    Works on public-layout arrays: (N, D) or (N, C, H, W).  ``fit(x)`` fills
    ``self.state`` (arrays only, so it saves to ``.npz``); ``transform(x)`` returns
    a new array and never modifies ``x``.
    """

    kind: ClassVar[str] = "preprocessor"

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        self.state: dict[str, np.ndarray] = {}

    def fit(self, x: np.ndarray) -> Preprocessor:
        raise NotImplementedError

    def transform(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Architecture(Component):
    """A named model family that expands to a layer stack.

    ``layers(sample_shape, num_classes) -> list[dict]`` returns the stack as spec
    entries (``{"type": ..., ...}``) for a public per-sample shape ``(C, H, W)``
    or ``(D,)``; the last layer outputs ``num_classes`` scores.
    """

    kind: ClassVar[str] = "architecture"

    def layers(self, sample_shape: Shape, num_classes: int) -> list[dict]:
        raise NotImplementedError


class Dataset(Component):
    """A labelled data set, declared from its parameters alone.

    ``sample_shape()`` (public layout, ``(C, H, W)`` or ``(D,)``) and
    ``num_classes()`` need no data, so specs validate without loading anything.
    ``load() -> (x, y)``: x float array of N samples, y int64 labels in [0, C).
    """

    kind: ClassVar[str] = "dataset"

    def sample_shape(self) -> Shape:
        raise NotImplementedError

    def num_classes(self) -> int:
        raise NotImplementedError

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError
