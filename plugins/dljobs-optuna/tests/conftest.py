"""The sweeps tests' real service (PostgreSQL, Redis, ``dljobs api`` and two ``dljobs worker``
processes), reused as it is."""

from tests.sweeps.conftest import sweep_service  # noqa: F401  a fixture, found by name
