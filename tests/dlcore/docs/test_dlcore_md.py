"""docs/dlcore.md stays true: every Python block runs, and every message in its error table is one dlcore raises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlcore.errors import ConfigError
from dlcore.layers.batchnorm import BatchNorm
from dlcore.layers.conv2d import Conv2D
from dlcore.layers.dropout import Dropout
from dlcore.layers.pooling import AvgPool
from dlcore.optimizers.adam import Adam

DOC = Path(__file__).resolve().parents[3] / "docs" / "dlcore.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_block_runs(index):
    exec(compile(BLOCKS[index], f"docs/dlcore.md block {index + 1}", "exec"), {})  # noqa: S102  (our own docs)


# The error table, row by row: the call that produces each message.
TABLE_CALLS = {
    "a bound": lambda: Conv2D(filters=8, size=-3),
    "p outside [0, 1)": lambda: Dropout(p=1.0),
    '`"same"` with stride 2': lambda: Conv2D(filters=8, size=3, stride=2, pad="same"),
    '`"same"` with an even size': lambda: Conv2D(filters=8, size=4, pad="same"),
    "output not whole": lambda: Conv2D(filters=8, size=5, stride=2).infer((32, 32, 3)),
    "kernel too large": lambda: Conv2D(filters=8, size=7, pad=1).infer((4, 4, 3)),
    "pooling window too large": lambda: AvgPool(size=5).infer((4, 6, 1)),
    "wrong input rank": lambda: BatchNorm().infer((4, 4, 3)),
    "unknown parameter": lambda: Adam(momentum=0.9),
    "missing parameter": lambda: Conv2D(size=3),
}


def table_rows():
    text = DOC.read_text().split("The messages you will meet:", 1)[1]
    rows = re.findall(r"^\| (.+?) \| `(.+?)` \| `(.+?)` \|$", text, flags=re.MULTILINE)
    return [(problem, field, message) for problem, field, message in rows if problem in TABLE_CALLS]


def test_every_table_row_is_checked():
    assert sorted(problem for problem, _, _ in table_rows()) == sorted(TABLE_CALLS)


@pytest.mark.parametrize("problem,field,message", table_rows(), ids=[row[0] for row in table_rows()])
def test_error_table_matches_what_dlcore_raises(problem, field, message):
    with pytest.raises(ConfigError) as err:
        TABLE_CALLS[problem]()
    assert (err.value.field, err.value.message) == (field, message)
