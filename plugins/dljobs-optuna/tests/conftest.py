"""The real service of the end-to-end tests (``dljobs up --workers 2``), reused as it is."""

from tests.e2e.conftest import embedded_service  # noqa: F401  a fixture, found by name
