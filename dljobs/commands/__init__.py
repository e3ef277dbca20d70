"""Subcommands of the ``dljobs`` CLI, one module per area."""
