"""The ``dljobs`` command: one click group; each area's subcommands live in their own module."""

from __future__ import annotations

import click

from dljobs import __version__
from dljobs.commands import jobs as jobs_cmds
from dljobs.commands import service
from dljobs.commands.datasets import datasets as datasets_cmd
from dljobs.commands.local import train_cmd, validate_cmd
from dljobs.commands.plugins import plugins as plugins_cmd
from dljobs.commands.sweeps import sweep as sweep_cmd
from dljobs.commands.tokens import tokens as tokens_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dljobs")
def main() -> None:
    """dljobs: train NumPy neural networks as jobs, locally or as a service."""


for command in (service.up, service.api, service.worker, service.db_group, train_cmd, validate_cmd, plugins_cmd,
                tokens_cmd, sweep_cmd):
    main.add_command(command)

# The commands that talk to a running service (dljobs.commands.remote: --url, --token, exit codes).
for command in (*jobs_cmds.COMMANDS, datasets_cmd):
    main.add_command(command)
