"""dlcore/README.md stays true: its Python block runs as written, with dlcore alone."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "dlcore" / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_python_block_runs(capsys):
    assert len(BLOCKS) == 1
    exec(compile(BLOCKS[0], "dlcore/README.md", "exec"), {})  # noqa: S102  (our own docs)
    val_accuracy = float(capsys.readouterr().out.split()[-1])
    assert 0.5 < val_accuracy <= 1.0  # two epochs of an MLP on digits learn something
