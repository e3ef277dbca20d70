"""The sweeps tests reuse the API tests' fixtures (an app on a fresh SQLite database, clients
with tokens of two owners) and the fault tests' worker processes; nothing of their own."""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401 - fixtures, found by name
    admin_token,
    anon_client,
    app,
    client,
    mlp_spec,
    other_owner_client,
    owner_client,
    problem,
    sent,
    session,
)
