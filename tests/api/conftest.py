"""Fixtures of the API tests: an app on a fresh SQLite database made by Alembic.

``client`` sends an admin bearer token (auth is on by default, ``api.auth``);
``anon_client`` sends none, ``other_owner_client`` a plain token of another owner.
The broker is replaced by a list (``sent``) so unit tests see what would be sent to
the workers without running any; the real-broker path is covered by the e2e tests.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from api import create_app
from dljobs.db import migrate


@pytest.fixture
def sent():
    """Job ids the API sent to the workers, in order."""
    return []


@pytest.fixture
def app(tmp_path, sent):
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    migrate.upgrade(url)
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": url,
        "DATA_DIR": str(tmp_path),
        "MAX_UPLOAD_BYTES": 200_000,
        "DLJOBS_ENQUEUE": sent.append,
        "DLJOBS_BROKER_CHECK": lambda: None,
        "SSE_POLL_S": 0.01,
    })
    yield app


def make_token(app, name: str, *, admin: bool = False, owner: str | None = None) -> str:
    """A new token in the app's database (its plain text)."""
    from api.context import session_factory
    from dljobs.tokens import create_token

    with app.app_context():
        factory = session_factory()
    with factory() as s:
        return create_token(s, name, admin=admin, owner=owner)


def bearer_client(app, token: str):
    """A test client that sends ``Authorization: Bearer <token>`` with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def admin_client_of():
    """``admin_client_of(app)``: an admin test client of an app a test made itself."""
    made = iter(range(1_000_000))
    return lambda app: bearer_client(app, make_token(app, f"admin-{next(made)}", admin=True))


@pytest.fixture
def admin_token(app):
    return make_token(app, "test-admin", admin=True)


@pytest.fixture
def client(app, admin_token):
    """The app's test client, as an admin (sees every owner's rows)."""
    return bearer_client(app, admin_token)


@pytest.fixture
def anon_client(app):
    """A test client with no credentials."""
    return app.test_client()


@pytest.fixture
def owner_client(app):
    """A plain (not admin) token of owner ``alice``."""
    return bearer_client(app, make_token(app, "alice", owner="alice"))


@pytest.fixture
def other_owner_client(app):
    """A plain (not admin) token of owner ``bob``: alice's rows are 404 to it."""
    return bearer_client(app, make_token(app, "bob", owner="bob"))


@pytest.fixture
def session(app):
    """A database session on the app's database (for arranging rows)."""
    from api.context import session_factory

    with app.app_context():
        factory = session_factory()
    with factory() as s:
        yield s


def _mlp_spec(**training) -> dict:
    """A small, valid digits MLP spec."""
    return {
        "name": "digits-mlp",
        "dataset": {"type": "digits"},
        "model": {"layers": [
            {"type": "flatten"},
            {"type": "affine", "units": 16},
            {"type": "relu"},
            {"type": "affine", "units": 10},
        ]},
        "optimizer": {"type": "sgd", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 32, "seed": 0, **training},
    }


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _assert_problem(resp, status: int, field: str | None = None) -> dict:
    """The problem+json body of ``resp``, checked for shape, status and field at fault."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json(force=True)
    assert set(body) >= {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    assert "Traceback" not in resp.get_data(as_text=True)
    if field is not None:
        fields = [e["field"] for e in body["errors"]]
        assert field in fields, fields
    return body


@pytest.fixture
def mlp_spec():
    """``mlp_spec(**training)``: a fresh valid spec (tests may mutate it)."""
    return _mlp_spec


@pytest.fixture
def npz_bytes():
    """``npz_bytes(x=..., y=...)``: the bytes of an ``.npz`` holding those arrays."""
    return _npz_bytes


@pytest.fixture
def problem():
    """``problem(resp, status, field)``: checks a problem+json answer, returns its body."""
    return _assert_problem
