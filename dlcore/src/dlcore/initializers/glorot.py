"""Glorot initialization as Keras and PyTorch name it: variance 2 / (fan_in + fan_out).

Glorot and Bengio (2010) keep the variance of activations in the forward pass
(Var = 1/fan_in) and of gradients in the backward pass (Var = 1/fan_out) as a
compromise, their average: Var(w) = 2 / (fan_in + fan_out).

- ``glorot_normal``: N(0, 2 / (fan_in + fan_out)), PyTorch's ``xavier_normal_`` and
  Keras' ``GlorotNormal`` without truncation;
- ``glorot_uniform``: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), whose variance
  a^2 / 3 is the same; PyTorch's ``xavier_uniform_`` and Keras' default ``GlorotUniform``.

dlcore's ``xavier`` is the notes' simpler form, randn / sqrt(fan_in) (fan_in only):
name ``glorot_*`` for what the other libraries call Xavier.  For a convolution
fan_in = F*F*C and fan_out = F*F*K, as in PyTorch.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from dlcore.component import Initializer, Shape
from dlcore.config import Config, EmptyConfig


def glorot_normal_init(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Gaussian weights with variance 2 / (fan_in + fan_out).

    Inputs:
    - shape: e.g. (D, M) or (F, F, C, K); fan_in, fan_out: D and M, or F*F*C and F*F*K.
    - rng: the generator to draw from; dtype: the result's type.

    Returns:
    - w: array of ``shape``, entries ~ N(0, 2 / (fan_in + fan_out)).
    """
    # Drawn in float64 so float32 and float64 models built from one seed agree.
    return (rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def glorot_uniform_init(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Uniform weights on (-a, a), a = sqrt(6 / (fan_in + fan_out)): variance 2 / (fan_in + fan_out).

    Inputs and returns: as :func:`glorot_normal_init`.
    """
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class GlorotNormal(Initializer):
    """Gaussian weights with variance 2 / (fan_in + fan_out) (PyTorch's xavier_normal_)."""

    name: ClassVar[str] = "glorot_normal"
    summary: ClassVar[str] = (
        "Gaussian weights with variance 2/(fan_in + fan_out), Glorot's average of both fans "
        "(PyTorch's xavier_normal_, Keras' GlorotNormal)."
    )
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def __call__(self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        return glorot_normal_init(shape, fan_in, fan_out, rng, dtype)


class GlorotUniform(Initializer):
    """Uniform weights on +-sqrt(6 / (fan_in + fan_out)) (PyTorch's xavier_uniform_)."""

    name: ClassVar[str] = "glorot_uniform"
    summary: ClassVar[str] = (
        "Uniform weights on +-sqrt(6/(fan_in + fan_out)), variance 2/(fan_in + fan_out) "
        "(PyTorch's xavier_uniform_, Keras' GlorotUniform)."
    )
    Config: ClassVar[type[Config]] = EmptyConfig
    examples: ClassVar[tuple[dict, ...]] = ({},)

    def __call__(self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        return glorot_uniform_init(shape, fan_in, fan_out, rng, dtype)
