"""Build an initialized, untrained Model from a spec."""

from __future__ import annotations

import warnings

import numpy as np

from dlcore.errors import SpecError
from dlcore.layout import shape_to_internal
from dlcore.model import Model
from dlcore.registry import default_registry
from dlcore.spec.validate import make_stack, validate


def seed_generators(seed: int) -> dict[str, np.random.Generator]:
    """The run's three independent generators: ``init`` (weights), ``order`` (shuffling), ``noise``
    (dropout, stochastic depth, augmentation), all derived from ``training.seed``."""
    init, order, noise = np.random.SeedSequence(seed).spawn(3)
    return {
        "init": np.random.Generator(np.random.PCG64(init)),
        "order": np.random.Generator(np.random.PCG64(order)),
        "noise": np.random.Generator(np.random.PCG64(noise)),
    }


def build(spec, registry=None, rng: np.random.Generator | None = None, init_warnings: list | None = None):
    """An initialized Model for ``spec`` (weights drawn from ``training.seed``'s init generator).

    Inputs:
    - spec: a ``ValidatedSpec`` (used as it is) or a plain spec (validated here).
    - rng: the generator weights are drawn from (default: the seed's ``init`` generator).
    - init_warnings: when a list, warnings raised by initializers are appended to it
      instead of being shown (the trainer turns them into ``zero_init`` events).
    Returns: a :class:`dlcore.model.Model` whose preprocessors are not fitted yet.
    """
    registry = registry or default_registry()
    checked = validate(spec, registry)
    spec = checked.to_dict()  # the model owns its copy (it is saved with the weights)
    errors: list = []
    net = make_stack(checked.layer_entries, registry, errors)
    if errors:
        raise SpecError(errors)
    dtype = np.dtype(spec["training"]["dtype"])
    init_entry = spec["init"]
    initializer = registry.get("initializers", init_entry["type"])(
        {k: v for k, v in init_entry.items() if k != "type"}
    )
    rng = rng if rng is not None else seed_generators(spec["training"]["seed"])["init"]
    net.need_input_grad = False  # nobody needs the gradient of the data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.build(shape_to_internal(checked.sample_shape), rng, dtype, initializer)
    for w in caught:
        if init_warnings is not None:
            init_warnings.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    preprocessors = [
        registry.get("preprocessors", p["type"])({k: v for k, v in p.items() if k != "type"})
        for p in spec["dataset"]["preprocess"]
    ]
    loss_entry = spec["loss"]
    loss = registry.get("losses", loss_entry["type"])({k: v for k, v in loss_entry.items() if k != "type"})
    return Model(
        spec=spec,
        net=net,
        preprocessors=preprocessors,
        sample_shape=checked.sample_shape,
        num_classes=checked.num_classes,
        loss=loss,
    )
