"""Data augmentation for training images: random flips and crops on public (N, C, H, W) batches.

A spec lists them under ``dataset.augment``: ``[{"type": "flip"}, {"type": "crop", "pad": 4}]``;
:func:`make_augmentation` builds one entry.
"""

from __future__ import annotations

from dlcore.augmentation.base import Augmentation
from dlcore.augmentation.crop import Crop
from dlcore.augmentation.flip import Flip
from dlcore.errors import ConfigError

#: Augmentations by the name a spec uses.
AUGMENTATIONS: dict[str, type[Augmentation]] = {"flip": Flip, "crop": Crop}


def make_augmentation(entry: dict, field: str = "") -> Augmentation:
    """Build an augmentation from a spec entry ``{"type": "crop", "pad": 4}``.

    Raises ConfigError with ``field`` prefixed: ``unknown augmentation 'x'`` on ``<field>.type``,
    bad parameters on ``<field>.<param>``.
    """
    if not isinstance(entry, dict) or "type" not in entry:
        raise ConfigError(
            f"{field}.type" if field else "type", "missing: every augmentation names its 'type'"
        )
    name = entry["type"]
    cls = AUGMENTATIONS.get(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted(AUGMENTATIONS))
        raise ConfigError("type", f"unknown augmentation {name!r} (known: {known})").at(field)
    try:
        return cls({k: v for k, v in entry.items() if k != "type"})
    except ConfigError as exc:
        raise exc.at(field) from None


__all__ = ["AUGMENTATIONS", "Augmentation", "Crop", "Flip", "make_augmentation"]
