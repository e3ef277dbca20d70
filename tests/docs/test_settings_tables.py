"""README.md's and docs/service.md's settings tables say what dljobs.settings.Settings does: the same
variables, and for every setting with a plain default, that default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dljobs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `DLJOBS_([A-Z0-9_]+)` \| ([^|]+) \|", re.MULTILINE)


def table(doc: str) -> dict[str, str]:
    """{field name: default cell} of the settings table in ``doc``."""
    rows = ROW.findall((ROOT / doc).read_text())
    assert rows, f"{doc} has no settings table"
    return {name.lower(): cell.strip() for name, cell in rows}


def _plain(cell: str) -> str | None:
    """The cell's value when it is one code span and nothing else (`1`, `dljobs`), else None."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    return match.group(1) if match else None


@pytest.mark.parametrize("doc", ["README.md", "docs/service.md"])
def test_the_table_lists_every_setting_and_only_settings(doc):
    assert set(table(doc)) == set(Settings.model_fields)


@pytest.mark.parametrize("doc", ["README.md", "docs/service.md"])
def test_every_plain_default_in_the_table_is_the_settings_default(doc):
    checked = 0
    for name, cell in table(doc).items():
        default = Settings.model_fields[name].default
        value = _plain(cell)
        if default is None or value is None:
            # described, not a literal (`sqlite:///<data_dir>/...`): the field's description says the same
            assert default is None or isinstance(default, Path), f"{doc}: {name} default {default!r} vs {cell!r}"
            continue
        if isinstance(default, bool):
            assert value.lower() == str(default).lower(), (doc, name)
        elif isinstance(default, (int, float)):
            assert float(value) == float(default), f"{doc}: DLJOBS_{name.upper()} is {cell}, Settings says {default}"
        else:
            assert value == str(default), f"{doc}: DLJOBS_{name.upper()} is {cell}, Settings says {default}"
        checked += 1
    assert checked >= len(Settings.model_fields) // 2
