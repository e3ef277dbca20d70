"""docs/cli.md names every job command and every option, and its exit codes are the code's."""

from __future__ import annotations

import re
from pathlib import Path

import click

from dljobs.commands import remote
from dljobs.commands.datasets import datasets
from dljobs.commands.jobs import COMMANDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
COMMON = {"--url", "--token", "--help"}


def _documented_rows() -> dict[str, str]:
    """``{"dljobs submit": the row's usage cell}`` of the commands table."""
    rows = re.findall(r"^\| `(dljobs [^`]+)` \|", DOC, flags=re.MULTILINE)
    return {" ".join(usage.split()[:3] if usage.startswith("dljobs datasets") else usage.split()[:2]): usage
            for usage in rows}


def _commands():
    for command in COMMANDS:
        yield f"dljobs {command.name}", command
    for name, command in datasets.commands.items():
        yield f"dljobs datasets {name}", command


def test_every_command_and_option_is_in_the_table():
    rows = _documented_rows()
    for name, command in _commands():
        assert name in rows, f"{name} is missing from docs/cli.md"
        options = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts
                   if opt.startswith("--")} - COMMON
        for option in options:
            assert option in rows[name] or option == "--output" and "-o FILE" in rows[name], (name, option)
    assert set(rows) == {name for name, _ in _commands()}  # and nothing that does not exist


def test_the_exit_code_table_is_the_code():
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", DOC, flags=re.MULTILINE))
    assert set(table) == {str(code) for code in (remote.OK, remote.JOB_NOT_SUCCEEDED, remote.REFUSED,
                                                 remote.UNREACHABLE, remote.INTERRUPTED)}
    assert "4xx" in table[str(remote.REFUSED)] and "5xx" in table[str(remote.UNREACHABLE)]
    assert "failed" in table[str(remote.JOB_NOT_SUCCEEDED)] and "Ctrl-C" in table[str(remote.INTERRUPTED)]
