"""`make demo` (python -m dljobs.demo): starts the embedded service, trains one job over
HTTP with a progress bar, prints the accuracy and the model URL, and stops cleanly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.service


def _run_demo(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dljobs.demo", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=timeout)


def test_demo_trains_prints_accuracy_and_shuts_down(tmp_path):
    spec = {
        "name": "demo-quick",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 32}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 4, "batch_size": 32, "seed": 0},
    }
    spec_path = tmp_path / "quick.json"
    spec_path.write_text(json.dumps(spec))
    result = _run_demo(["--spec", str(spec_path)], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"final validation accuracy: ([0-9.]+)", result.stdout).group(1))
    assert 0.85 <= accuracy <= 1.0
    assert re.search(r"model: http://127\.0\.0\.1:\d+/api/v1/jobs/[0-9a-f]{32}/model", result.stdout)
    assert "%|" in result.stderr  # the live progress bar
    assert "stopped" in result.stderr
    leftover = subprocess.run(["pgrep", "-f", "dljobs-demo-"], capture_output=True, text=True, check=False).stdout.split()
    assert leftover == [], "no process of the demo's service outlives it"


@pytest.mark.slow
def test_make_demo_reaches_the_digits_cnn_floor():
    result = _run_demo([], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"final validation accuracy: ([0-9.]+)", result.stdout).group(1))
    assert accuracy >= 0.97
