"""The example specs the submit page starts from: ``examples/*.json`` of the checkout.

Not a blueprint.  The examples ship beside the packages (the repository, and the Docker
image, which copies ``examples/`` next to ``api/``); an install without them offers
none, and the submit page then starts from an empty spec.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Where the examples live: ``examples/`` beside the ``api`` package.
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def example_specs(folder: Path = EXAMPLES_DIR) -> dict[str, dict]:
    """``{file stem: spec}`` of every readable JSON object in ``folder``, sorted by name.

    A file that is not a JSON object is left out (the page must render whatever the folder
    holds); the flagship ``digits_cnn`` comes first when present.
    """
    found: dict[str, dict] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            spec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(spec, dict):
            found[path.stem] = spec
    if "digits_cnn" in found:
        found = {"digits_cnn": found.pop("digits_cnn"), **found}
    return found
