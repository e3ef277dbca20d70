"""dljobs: the glue the API and the workers share (settings, persistence, client, CLI)."""

__version__ = "0.1.0"
