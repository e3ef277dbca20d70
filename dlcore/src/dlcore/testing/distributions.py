"""Distributions that exist only in memory: registries for tests, with no install step.

``plugin_distribution("dlcore-extras", "0.1.0", {"activations": {"gelu": "pkg.mod:GELU"}})``
behaves like an installed distribution for :meth:`dlcore.registry.Registry.from_entry_points`
(its entry points carry ``.dist``, so listings show the name and version), without
touching ``sys.path`` or the installed set: nothing global changes.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from importlib.metadata import Distribution


class InMemoryDistribution(Distribution):
    """A distribution whose METADATA and entry_points.txt are strings held in memory."""

    def __init__(self, files: Mapping[str, str]):
        self._files = dict(files)

    def read_text(self, filename):
        return self._files.get(str(filename))

    def locate_file(self, path):
        return pathlib.PurePosixPath("<memory>") / str(path)


def plugin_distribution(name: str, version: str, entry_points: Mapping[str, Mapping[str, str]]) -> InMemoryDistribution:
    """A distribution ``name`` ``version`` declaring ``{group: {entry name: "module:Class"}}``.

    Groups may be given as ``"layers"`` or ``"dlcore.layers"``.
    """
    sections = []
    for group, eps in entry_points.items():
        group = group if group.startswith("dlcore.") else f"dlcore.{group}"
        sections.append(f"[{group}]\n" + "".join(f"{ep_name} = {value}\n" for ep_name, value in eps.items()))
    return InMemoryDistribution(
        {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": "\n".join(sections),
        }
    )
