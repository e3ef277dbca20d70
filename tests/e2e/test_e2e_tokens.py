"""``dljobs tokens`` as a person runs it, and the token file ``dljobs up`` writes."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from dljobs.client import Client, Unauthorized
from dljobs.db import migrate
from dljobs.db.session import session_factory
from dljobs.settings import Settings
from dljobs.tokens import ensure_token_file, list_tokens
from tests.e2e.conftest import DLJOBS, service_env

pytestmark = pytest.mark.service


def _tokens(data_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(DLJOBS + ["tokens", *args, "--data-dir", str(data_dir)], env=service_env(data_dir),
                          capture_output=True, text=True, timeout=120, check=False)


def test_create_prints_the_token_once_and_stores_only_its_hash(tmp_path):
    made = _tokens(tmp_path, "create", "--name", "alice")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("dlj_") and len(token) >= 40 and "\n" not in token
    listed = _tokens(tmp_path, "list")
    assert listed.returncode == 0 and token not in listed.stdout + listed.stderr
    assert listed.stdout.split()[:6] == ["NAME", "OWNER", "ADMIN", "CREATED", "LAST", "USED"]
    assert "alice" in listed.stdout
    raw = (tmp_path / "dljobs.sqlite").read_bytes()
    for suffix in ("-wal", "-shm"):
        if (tmp_path / f"dljobs.sqlite{suffix}").exists():
            raw += (tmp_path / f"dljobs.sqlite{suffix}").read_bytes()
    assert token.encode() not in raw  # not in the database file, nor in its write-ahead log
    with sqlite3.connect(tmp_path / "dljobs.sqlite") as db:
        (stored,) = db.execute("SELECT token_hash FROM api_tokens WHERE name = 'alice'").fetchone()
    assert len(stored) == 64 and stored not in token


def test_a_duplicate_name_is_one_line_and_exit_2(tmp_path):
    assert _tokens(tmp_path, "create", "--name", "dup").returncode == 0
    again = _tokens(tmp_path, "create", "--name", "dup")
    assert again.returncode == 2 and again.stdout == ""
    assert len(again.stderr.strip().splitlines()) == 1 and "dup" in again.stderr
    assert "Traceback" not in again.stderr


def test_revoking_an_unknown_token_is_exit_2(tmp_path):
    gone = _tokens(tmp_path, "revoke", "nobody")
    assert gone.returncode == 2 and "nobody" in gone.stderr


def test_up_writes_a_0600_token_in_a_0700_data_dir_and_prints_the_login_url(embedded_service):
    data = Path(embedded_service.procs.env["DLJOBS_DATA_DIR"])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "token").stat().st_mode) == 0o600
    token = (data / "token").read_text().strip()
    port = embedded_service.base_url.rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/?token={token}" in (embedded_service.procs.folder / "up.log").read_text()
    # the login URL works in a "browser": cookie set, token gone from the address
    browser = requests.Session()
    landed = browser.get(f"http://127.0.0.1:{port}/?token={token}", timeout=10)
    assert landed.status_code == 200 and landed.url == f"http://127.0.0.1:{port}/"
    assert requests.get(f"{embedded_service.base_url}/api/v1/jobs", timeout=10).status_code == 401


def test_a_revoked_token_is_401_over_http(embedded_service):
    data = embedded_service.procs.env["DLJOBS_DATA_DIR"]
    made = _tokens(data, "create", "--name", "short-lived")
    assert made.returncode == 0, made.stderr
    client = Client(embedded_service.base_url, token=made.stdout.strip())
    assert client.list()["jobs"] == []  # a new owner sees none of the admin's jobs
    assert _tokens(data, "revoke", "short-lived").returncode == 0
    with pytest.raises(Unauthorized) as refused:
        client.list()
    assert "token= argument" in str(refused.value)
    listed = _tokens(data, "list").stdout
    line = next(x for x in listed.splitlines() if x.startswith("short-lived"))
    assert line.split()[-2:] != ["-", "-"]  # last used and revoked are both set


def test_the_client_says_where_it_looked_for_a_token(embedded_service, tmp_path, monkeypatch):
    monkeypatch.delenv("DLJOBS_TOKEN", raising=False)
    monkeypatch.setenv("DLJOBS_DATA_DIR", str(tmp_path))  # holds no token file
    with pytest.raises(Unauthorized) as refused:
        Client(embedded_service.base_url).list()
    assert "DLJOBS_TOKEN" in str(refused.value) and str(tmp_path / "token") in str(refused.value)
    monkeypatch.setenv("DLJOBS_DATA_DIR", embedded_service.procs.env["DLJOBS_DATA_DIR"])
    assert "jobs" in Client(embedded_service.base_url).list()  # the token file of DLJOBS_DATA_DIR


def test_a_token_file_the_database_does_not_know_is_replaced(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    migrate.upgrade(settings.effective_database_url)
    path = settings.token_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("dlj_from-an-older-database\n")
    path.chmod(0o644)
    with session_factory(settings)() as session:
        first = ensure_token_file(session, path)
        assert first != "dlj_from-an-older-database"
        assert ensure_token_file(session, path) == first  # a known token is kept
        assert [t.admin for t in list_tokens(session)] == [True]
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
