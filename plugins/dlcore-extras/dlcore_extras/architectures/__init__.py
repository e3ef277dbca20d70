"""dlcore-extras architectures (declared as entry points in pyproject.toml)."""
