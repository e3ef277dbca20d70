"""dljobs validate and dljobs train, in process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dljobs.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

SMALL = {
    "name": "small",
    "dataset": {"type": "spiral", "points_per_class": 30, "classes": 3, "seed": 0},
    "model": {"layers": [{"type": "affine", "units": 16}, {"type": "relu"}, {"type": "affine", "units": 3}]},
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 3, "batch_size": 16},
}


def write(tmp_path, spec, name="spec.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return str(path)


def test_validate_prints_the_shape_table():
    result = CliRunner().invoke(main, ["validate", str(EXAMPLES / "digits_cnn.json")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    header = out.splitlines()[0].split()
    assert header == ["#", "layer", "output", "shape", "params", "FLOPs"]
    assert "32x8x8" in out and "64x4x4" in out
    assert any(line.split()[:2] == ["0", "conv2d"] and "320" in line for line in out.splitlines())  # (3*3*1+1)*32
    assert "total" in out


def test_validate_lists_the_layers_inside_blocks():
    result = CliRunner().invoke(main, ["validate", str(EXAMPLES / "shapes_resnet.json")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("residual (identity)" in line for line in lines)
    assert any("residual (projection)" in line for line in lines)
    block = next(line.split()[0] for line in lines if "residual" in line)
    inner = [line for line in lines if line.startswith(f"{block}.")]
    assert inner and all(line.split()[1] in ("conv2d", "spatial_batchnorm", "relu") for line in inner)
    result = CliRunner().invoke(main, ["validate", str(EXAMPLES / "shapes_googlenet.json")])
    module = next(line.split()[0] for line in result.stdout.splitlines() if "inception" in line)
    branches = {line.split()[0].split(".")[1] for line in result.stdout.splitlines() if line.startswith(f"{module}.b")}
    assert branches == {"b0", "b1", "b2", "b3"}


def test_validate_json_matches_infer():
    from dlcore.spec import infer

    result = CliRunner().invoke(main, ["validate", "--json", str(EXAMPLES / "spiral_svm.json")])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == infer(json.loads((EXAMPLES / "spiral_svm.json").read_text()))


def test_validate_lists_every_error_and_exits_2(tmp_path):
    bad = json.loads(json.dumps(SMALL))
    bad["model"]["layers"][0]["units"] = 0
    bad["optimizer"]["lr"] = -1
    result = CliRunner().invoke(main, ["validate", write(tmp_path, bad)])
    assert result.exit_code == 2
    assert "model.layers[0].units" in result.stdout and "optimizer.lr" in result.stdout


def test_train_json_prints_metrics_on_the_last_line(tmp_path):
    out = tmp_path / "model.npz"
    result = CliRunner().invoke(main, ["train", write(tmp_path, SMALL), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1  # the summary and "model saved" go to stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"val_accuracy", "train_accuracy", "val_loss", "epochs", "seconds"} <= set(metrics)
    assert 0 <= metrics["val_accuracy"] <= 1 and 0 <= metrics["train_accuracy"] <= 1
    assert metrics["epochs"] == 3 and metrics["seconds"] > 0 and np.isfinite(metrics["val_loss"])
    assert "val_accuracy" in result.stderr  # the human summary
    from dlcore.loading import load_model

    model = load_model(out)
    assert model.predict(np.zeros((4, 2))).shape == (4,)


def test_train_json_reports_an_invalid_spec_or_file_on_the_last_line(tmp_path):
    bad = json.loads(json.dumps(SMALL))
    bad["optimizer"]["lr"] = -1
    result = CliRunner().invoke(main, ["train", write(tmp_path, bad), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout.strip().splitlines()[-1])["errors"][0]["field"] == "optimizer.lr"
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",')
    for command in ("train", "validate"):
        result = CliRunner().invoke(main, [command, str(broken), "--json"])
        assert result.exit_code == 2, result.output
        (error,) = json.loads(result.stdout.strip().splitlines()[-1])["errors"]
        assert error["field"] == str(broken) and "not valid JSON" in error["message"]


def test_a_problem_with_the_whole_file_names_the_file_not_body(tmp_path, monkeypatch):
    """Over HTTP the spec is the request ``body``; on the command line it is the file the user typed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.json").write_text('{"name": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, says in (("broken.json", "not valid JSON"), ("list.json", "a job spec is a JSON object")):
        result = CliRunner().invoke(main, ["validate", name])
        assert result.exit_code == 2
        assert result.output.startswith(f"error: {name}: {says}"), result.output
        assert "body" not in result.output
    bad = json.loads(json.dumps(SMALL))
    bad["optimizer"]["lr"] = -1
    result = CliRunner().invoke(main, ["validate", write(tmp_path, bad)])
    assert "error: optimizer.lr:" in result.output  # a field inside the spec keeps its path


def test_train_reports_nan_loss_and_exits_1(tmp_path):
    spec = json.loads(json.dumps(SMALL))
    spec["optimizer"] = {"type": "sgd", "lr": 1e6}
    result = CliRunner().invoke(main, ["train", write(tmp_path, spec), "--json", "--quiet"])
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"]["code"] == "nan_loss"


def test_train_checkpoint_and_resume(tmp_path):
    spec = json.loads(json.dumps(SMALL))
    spec["training"]["checkpoint_every"] = 2
    path = write(tmp_path, spec)
    ckpt = tmp_path / "ckpt.npz"
    runner = CliRunner()
    full = runner.invoke(main, ["train", path, "--quiet", "--checkpoint", str(ckpt), "--out", str(tmp_path / "a.npz")])
    assert full.exit_code == 0 and ckpt.exists()
    resumed = runner.invoke(main, ["train", path, "--quiet", "--resume", str(ckpt), "--out", str(tmp_path / "b.npz")])
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_resume_from_another_specs_checkpoint_fails_cleanly(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    runner = CliRunner()
    assert runner.invoke(main, ["train", write(tmp_path, SMALL), "--quiet", "--checkpoint", str(ckpt)]).exit_code == 0
    other = json.loads(json.dumps(SMALL))
    other["training"]["seed"] = 9
    result = runner.invoke(main, ["train", write(tmp_path, other, "other.json"), "--json", "--quiet", "--resume", str(ckpt)])
    assert result.exit_code == 1
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error["code"] == "bad_checkpoint" and "different spec" in error["message"]
    assert "Traceback" not in result.output


def test_real_subprocess_with_progress_bar_on_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from dljobs.cli import main; main()", "train", write(tmp_path, SMALL), "--json"],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "it/s" in proc.stderr or "it]" in proc.stderr  # tqdm
    last = proc.stdout.strip().splitlines()[-1]
    assert json.loads(last)["epochs"] == 3


@pytest.mark.parametrize("signame, reason", [("SIGINT", "interrupted"), ("SIGTERM", "terminated")])
def test_ctrl_c_and_sigterm_stop_cleanly_with_a_checkpoint(tmp_path, signame, reason):
    import signal
    import time

    from dlcore.training.checkpoint import unpack_checkpoint

    spec = json.loads(json.dumps(SMALL))
    spec["training"]["epochs"] = 10_000
    ckpt = tmp_path / "ckpt.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dljobs.cli import main; main()", "train", write(tmp_path, spec),
         "--json", "--checkpoint", str(ckpt)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while not ckpt.exists() and time.monotonic() < deadline:  # wait for training to be under way
        time.sleep(0.1)
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["stopped"] and metrics["stop_reason"] == reason
    _, meta = unpack_checkpoint(ckpt.read_bytes())
    assert 0 < meta["iteration"] < 10_000 * 5


def test_offline_npz_and_warm_start_paths_are_relative_to_the_spec(tmp_path, monkeypatch):
    from dlcore.loading import load_model
    from dlcore.registry import default_registry

    x, y = default_registry().get("datasets", "spiral")({"points_per_class": 30, "classes": 3, "seed": 4}).load()
    folder = tmp_path / "job"
    folder.mkdir()
    np.savez(folder / "data.npz", x=x, y=y)
    spec = json.loads(json.dumps(SMALL))
    spec["dataset"] = {"type": "npz", "path": "data.npz", "val_fraction": 0.2}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither the data nor the model is in the working directory
    runner = CliRunner()
    table = runner.invoke(main, ["validate", write(folder, spec)])
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[2].split() == ["input", "2"]  # the sample shape read from the file
    first = runner.invoke(main, ["train", write(folder, spec), "--json", "--quiet", "--out", str(folder / "first.npz")])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.strip().splitlines()[-1])["epochs"] == 3
    model = load_model(folder / "first.npz")
    assert model.sample_shape == (2,) and model.num_classes == 3
    assert model.spec["dataset"]["path"] == str(folder / "data.npz")

    warm = json.loads(json.dumps(spec))
    warm["training"].update(warm_start="first.npz", epochs=1)
    second = runner.invoke(main, ["train", write(folder, warm, "warm.json"), "--json", "--quiet"])
    assert second.exit_code == 0, second.output
    # the same start given on the command line (the spec-file field above is kept for old files)
    plain = json.loads(json.dumps(spec))
    plain["training"]["epochs"] = 1
    third = runner.invoke(main, ["train", write(folder, plain, "plain.json"), "--json", "--quiet",
                                 "--warm-start", str(folder / "first.npz")])
    assert third.exit_code == 0, third.output
    assert json.loads(third.stdout.strip().splitlines()[-1]) == json.loads(second.stdout.strip().splitlines()[-1]) | {
        "seconds": json.loads(third.stdout.strip().splitlines()[-1])["seconds"]}
    nowhere = runner.invoke(main, ["train", write(folder, plain, "plain.json"), "--quiet",
                                   "--warm-start", str(folder / "nowhere.npz")])
    assert nowhere.exit_code == 2 and "--warm-start" in nowhere.output
    missing = json.loads(json.dumps(spec))
    missing["dataset"]["path"] = "nowhere.npz"
    bad = runner.invoke(main, ["validate", write(folder, missing, "missing.json")])
    assert bad.exit_code == 2 and "dataset" in bad.stdout and "nowhere.npz" in bad.stdout
