"""Weight initializers (catalogue section 8), and the one place a layer's default is resolved.

A layer draws its weights with :func:`draw_weights`, whatever initializer it was
given: ``None`` (a layer built by hand, without a spec) means He, the default a
spec's ``init`` section also has.
"""

from __future__ import annotations

from dlcore.backend import xp
from dlcore.component import Initializer, Shape
from dlcore.initializers.he import He

#: What ``initializer=None`` means in every ``Layer.build``.
DEFAULT_INITIALIZER: Initializer = He()


def draw_weights(initializer, shape: Shape, fan_in: int, fan_out: int, rng, dtype):
    """A weight array drawn by ``initializer`` (None: :data:`DEFAULT_INITIALIZER`), in ``dtype``.

    Inputs:
    - initializer: an :class:`~dlcore.component.Initializer` (or any callable of the same
      signature), or None.
    - shape: the array's shape, e.g. (D, M) or (F, F, C, K).
    - fan_in, fan_out: inputs feeding one output unit, outputs fed by one input unit.
    - rng: the generator to draw from; dtype: the result's floating type.

    Returns:
    - w: array of ``shape`` and ``dtype``.
    """
    init = DEFAULT_INITIALIZER if initializer is None else initializer
    return xp.asarray(init(shape, fan_in, fan_out, rng, dtype), dtype=dtype)
