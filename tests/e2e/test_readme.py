"""Every code block of README.md runs, as written, against a running ``dljobs up``.

The only words changed are the ones a reader changes too: the port (the test's service listens on
a free one), the data directory holding the token file, and the two commands that are this suite's own (``make demo`` is run by
tests/service/test_demo.py, ``make test`` is the command running this test).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcore.loading import load_model

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(bash|python)\n(.*?)```", README, flags=re.DOTALL)
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.service


def _commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def _bash(script: str, cwd: Path, timeout: float = 300) -> str:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_readme_has_the_blocks_this_test_knows():
    assert [kind for kind, _ in BLOCKS] == ["bash", "bash", "bash", "python"]
    first = _commands(BLOCKS[0][1])
    assert first == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    assert "def test_make_demo_reaches_the_digits_cnn_floor" in (ROOT / "tests/service/test_demo.py").read_text()


def test_the_local_commands_block_runs(embedded_service, tmp_path):
    commands = _commands(BLOCKS[1][1])
    assert commands[0] == "make install && source .venv/bin/activate"  # this suite runs inside that venv
    assert commands[-1] == "dljobs up --port 8000 --workers 2"  # the embedded_service fixture runs it
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    out = _bash("\n".join(commands[1:-1]), tmp_path)
    assert "total" in out.lower() and "conv2d" in out  # the shape table
    assert "val_accuracy" in out or "accuracy" in out  # dljobs train's summary
    assert "softmax" in out  # the plugin listing


def test_the_curl_block_runs_against_the_service(embedded_service, tmp_path):
    port = embedded_service.base_url.rsplit(":", 1)[1]
    data_dir = embedded_service.procs.env["DLJOBS_DATA_DIR"]
    script = BLOCKS[2][1].replace("localhost:8000", f"127.0.0.1:{port}")
    assert "~/.local/share/dljobs/token" in script  # the token file dljobs up writes
    script = script.replace("~/.local/share/dljobs/token", f"{data_dir}/token")
    assert script != BLOCKS[2][1]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    out = _bash(script, tmp_path)
    assert '"predictions"' in out and "event: status" in out
    model = load_model(tmp_path / "model.npz")
    assert model.predict(np.zeros((1, 1, 8, 8))).shape == (1,)


def test_the_python_client_block_runs_against_the_service(embedded_service, monkeypatch, capsys):
    code = BLOCKS[3][1]
    assert 'Client("http://127.0.0.1:8000")' in code
    monkeypatch.chdir(ROOT)
    # The client finds the token file of DLJOBS_DATA_DIR, as under the default data directory.
    monkeypatch.delenv("DLJOBS_TOKEN", raising=False)
    monkeypatch.setenv("DLJOBS_DATA_DIR", embedded_service.procs.env["DLJOBS_DATA_DIR"])
    exec(compile(code.replace("http://127.0.0.1:8000", embedded_service.base_url), "README.md python block", "exec"), {})  # noqa: S102
    last = capsys.readouterr().out.strip().splitlines()[-1]
    accuracy, predictions = last.split(" ", 1)
    assert 0.9 < float(accuracy) <= 1.0
    assert len(eval(predictions)) == 5
