"""dlcore-extras activations (declared as entry points in pyproject.toml)."""
