"""Every example trains to its accuracy floor (marked slow: about two minutes in all on 2 cores)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dlcore.spec import infer
from dlcore.training import train

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FLOORS = {
    "digits_cnn": 0.97,
    "digits_mlp": 0.95,
    "spiral_svm": 0.95,
    "shapes_vgg": 0.90,
    "shapes_googlenet": 0.90,
    "shapes_resnet": 0.90,
}


def test_every_example_has_a_floor_and_validates():
    assert {p.stem for p in EXAMPLES.glob("*.json")} == set(FLOORS)
    for name in FLOORS:
        assert infer(json.loads((EXAMPLES / f"{name}.json").read_text()))["total_params"] > 0


def test_shapes_examples_use_four_classes():
    for name in ("shapes_vgg", "shapes_googlenet", "shapes_resnet"):
        assert infer(json.loads((EXAMPLES / f"{name}.json").read_text()))["num_classes"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_example_reaches_its_floor(name):
    spec = json.loads((EXAMPLES / f"{name}.json").read_text())
    started = time.perf_counter()
    result = train(spec)
    seconds = time.perf_counter() - started
    print(f"{name}: val_accuracy {result.metrics['val_accuracy']:.4f} in {seconds:.1f}s")
    assert result.metrics["val_accuracy"] >= FLOORS[name]
    assert not [e for e in result.events if e["severity"] == "error"]
    if name == "digits_cnn":
        assert seconds < 60
