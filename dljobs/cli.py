"""The ``dljobs`` command: one click group; each area adds its subcommands here."""

from __future__ import annotations

import click

from dljobs import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dljobs")
def main() -> None:
    """dljobs: train NumPy neural networks as jobs, locally or as a service."""


# Subcommands are registered below, one line per area, each defined in its own module.
from dljobs.commands import service as _service  # noqa: E402  (H7: the service's processes)
main.add_command(_service.up)
main.add_command(_service.api)
main.add_command(_service.worker)
main.add_command(_service.db_group)
from dljobs.commands.local import train_cmd, validate_cmd  # noqa: E402

main.add_command(train_cmd)
main.add_command(validate_cmd)
from dljobs.commands.plugins import plugins as plugins_cmd  # noqa: E402  (H4: plugin listing and kit)
main.add_command(plugins_cmd)
