"""dlcore-extras layers (declared as entry points in pyproject.toml)."""
