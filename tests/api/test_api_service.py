"""The app factory, health and readiness, plugins (the OpenAPI document: test_api_openapi)."""

from __future__ import annotations

import pytest

from api import create_app

API = "/api/v1"


def test_factory_reads_overrides_and_limits_uploads(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 200_000
    assert app.config["DLJOBS_SETTINGS"].max_upload_bytes == 200_000


def test_factory_without_config_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DLJOBS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DLJOBS_MAX_UPLOAD_BYTES", "12345")
    monkeypatch.delenv("DLJOBS_DATABASE_URL", raising=False)
    app = create_app()
    settings = app.config["DLJOBS_SETTINGS"]
    assert app.config["MAX_CONTENT_LENGTH"] == 12345
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'dljobs.sqlite'}"
    assert app.test_client().get("/healthz").status_code == 200


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["database"]["ok"] is True


def test_readyz_is_503_naming_what_is_down(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'no.sqlite'}"

    def broker_down():
        raise ConnectionError("broker refused")

    app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                      "DLJOBS_BROKER_CHECK": broker_down})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    checks = resp.get_json()["checks"]
    assert checks["broker"]["ok"] is False and "broker refused" in checks["broker"]["error"]
    assert checks["database"]["ok"] is False


def test_readyz_masks_credentials_and_shows_one_line(tmp_path):
    def broker_down():
        raise ConnectionError("cannot reach redis://dljobs:s3cret@redis:6379/0\nTraceback: ...")

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                      "DATA_DIR": str(tmp_path), "DLJOBS_BROKER_CHECK": broker_down})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["broker"]["error"] == (
        "ConnectionError: cannot reach redis://***@redis:6379/0")
    assert "s3cret" not in resp.get_data(as_text=True)


def test_readyz_with_the_embedded_filesystem_broker(tmp_path):
    from dljobs.db import migrate

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path)})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200, resp.get_json()


def test_plugins_lists_the_registry(client):
    from dlcore.registry import default_registry
    from dljobs.search.registry import default_methods

    listing = client.get(f"{API}/plugins").get_json()
    assert listing == {**default_registry().listing(), "search_methods": default_methods().listing()}


@pytest.mark.parametrize("path", ["/healthz", f"{API}/jobs", f"{API}/datasets",
                                  f"{API}/openapi.json"])
def test_json_endpoints_answer_json(client, path):
    resp = client.get(path)
    assert resp.status_code == 200 and resp.is_json
