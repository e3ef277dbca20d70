"""dlcore-extras: components for dljobs found through the ``dlcore.*`` entry points.

Nothing here registers itself on import: pyproject.toml declares every
component, exactly as dljobs declares its built-ins.
"""

__version__ = "0.1.0"
