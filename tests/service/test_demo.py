"""`make demo` (python -m dljobs.demo): starts the embedded service, trains one job over
HTTP with a progress bar, prints the accuracy, saves the model to a file (its URL is gone
once the service stops) and stops cleanly."""

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
    out = tmp_path / "model.npz"
    result = _run_demo(["--spec", str(spec_path), "--out", str(out)], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"final validation accuracy: ([0-9.]+)", result.stdout).group(1))
    assert 0.85 <= accuracy <= 1.0
    assert f"model saved to {out}" in result.stdout and "(N, 1, 8, 8)" in result.stdout
    assert "http://" not in result.stdout  # no URL of a service that is about to stop
    from dlcore.datasets.digits import Digits
    from dlcore.loading import load_model

    x, y = Digits().load()
    predicted = load_model(out).predict(x[:200])
    assert (predicted == y[:200]).mean() >= 0.85  # the model saved is the one trained
    assert "%|" in result.stderr  # the live progress bar
    assert "stopped" in result.stderr
    leftover = subprocess.run(["pgrep", "-f", "dljobs-demo-"], capture_output=True, text=True, check=False).stdout.split()
    assert leftover == [], "no process of the demo's service outlives it"


@pytest.mark.slow
def test_make_demo_reaches_the_digits_cnn_floor(tmp_path):
    result = _run_demo(["--out", str(tmp_path / "demo-model.npz")], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"final validation accuracy: ([0-9.]+)", result.stdout).group(1))
    assert accuracy >= 0.97
    assert (tmp_path / "demo-model.npz").stat().st_size > 0


def test_demo_refuses_an_unwritable_out_before_starting_anything(tmp_path):
    result = _run_demo(["--out", str(tmp_path / "missing" / "m.npz")], timeout=60)
    assert result.returncode == 2 and "--out" in result.stderr and "does not exist" in result.stderr
    assert "starting dljobs" not in result.stderr


@pytest.mark.slow
def test_demo_gives_up_at_its_timeout_and_still_shuts_down(tmp_path):
    """The job outlasts --timeout: the demo says so, exits 1 and stops its service (the alarm
    must not look like a dropped connection to the event stream, which would reconnect)."""
    result = _run_demo(["--out", str(tmp_path / "m.npz"), "--timeout", "1"], timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "demo failed: the job did not finish within --timeout" in result.stderr
    assert "stopped" in result.stderr and not (tmp_path / "m.npz").exists()
