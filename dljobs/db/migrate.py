"""Run Alembic from code: ``dljobs db upgrade`` and the tests use this, from any cwd."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from dljobs.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str | None = None, connection=None) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    if database_url:
        config.attributes["database_url"] = database_url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Bring the database (default: the settings' one) to ``revision``."""
    if database_url is None:

        settings = get_settings()
        settings.data_path.mkdir(parents=True, exist_ok=True)
        database_url = settings.effective_database_url
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
