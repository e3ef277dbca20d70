"""The built-in datasets (digits, spiral, shapes, npz) and the seeded stratified split."""

from __future__ import annotations

from dlcore.errors import ConfigError

#: Most classes a data set may have: every epoch records a C x C confusion matrix.
MAX_CLASSES = 1000


def at_dataset(exc: ConfigError) -> ConfigError:
    """A dataset's error placed under the spec's ``dataset`` key.

    Parameters come unprefixed (``size`` -> ``dataset.size``); errors that already name
    the dataset (``npz``'s ``dataset`` and ``dataset.x``) are kept as they are.
    """
    if exc.field == "dataset" or exc.field.startswith("dataset."):
        return exc
    return exc.at("dataset")
